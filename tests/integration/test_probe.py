"""The containers' healthcheck, `python -m meshkit.probe`, against a real service. It
speaks mutual TLS as the service it probes; here the in-process service serves with
Envoy's identity (tests/conftest.py), so the probe presents that one."""

import asyncio
import os
import sys


async def probe(*args: str, env: dict | None = None) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshkit.probe",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_probe_follows_the_standard_health_check(inventory, service_env):
    identity = {"MESH_TLS_DIR": service_env["MESH_TLS_DIR"]}
    assert await probe("grpc", inventory.address, "envoy", env=identity) == 0
    assert await probe("grpc", inventory.address, "envoy", "shopmesh.inventory.v1.InventoryService", env=identity) == 0
    assert await probe("grpc", inventory.address, "envoy", "no.such.Service", env=identity) == 1
    await inventory.app.health.enter_graceful_shutdown()
    assert await probe("grpc", inventory.address, "envoy", env=identity) == 1


async def test_probe_fails_without_an_identity_where_nothing_answers_and_explains_its_usage(tmp_path, service_env):
    assert await probe("grpc", "127.0.0.1:1", "envoy", env={"MESH_TLS_DIR": str(tmp_path)}) == 1
    assert await probe("grpc", "127.0.0.1:1", "envoy", env={"MESH_TLS_DIR": service_env["MESH_TLS_DIR"]}) == 1
    assert await probe("http", "http://127.0.0.1:1/ready") == 1
    assert await probe("nonsense") == 2
