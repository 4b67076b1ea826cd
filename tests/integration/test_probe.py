"""The containers' healthcheck, `python -m meshkit.probe`, against a real service."""

import asyncio
import sys


async def probe(*args: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meshkit.probe", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_probe_follows_the_standard_health_check(inventory):
    assert await probe("grpc", inventory.address) == 0
    assert await probe("grpc", inventory.address, "shopmesh.inventory.v1.InventoryService") == 0
    assert await probe("grpc", inventory.address, "no.such.Service") == 1
    await inventory.app.health.enter_graceful_shutdown()
    assert await probe("grpc", inventory.address) == 1


async def test_probe_fails_where_nothing_answers_and_explains_its_usage():
    assert await probe("grpc", "127.0.0.1:1") == 1
    assert await probe("http", "http://127.0.0.1:1/ready") == 1
    assert await probe("nonsense") == 2
