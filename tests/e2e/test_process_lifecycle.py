"""Each service as its own process: `python -m <service>`, fail-fast config and
graceful shutdown on SIGTERM / SIGINT."""

import json
import signal
import subprocess
import sys

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.launcher import ROOT
from devmesh.ports import free_port
from tests.helpers.mesh import identities_in


@pytest.mark.parametrize("service", ["orders", "inventory", "notifications"])
def test_bad_config_fails_fast_with_one_line(service, tmp_path):
    variable = f"{service.upper()}_LISTEN"
    result = subprocess.run(
        [sys.executable, "-m", service],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", variable: "no-port-here", "SHOPMESH_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown(sig, tmp_path):
    layout = identities_in(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "INVENTORY_LISTEN": address, "SHOPMESH_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with layout.channel(address, "inventory") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="shopmesh.inventory.v1.InventoryService"),
                timeout=20,
                wait_for_ready=True,
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(sig)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    messages = [json.loads(line)["message"] for line in output.splitlines() if line.startswith("{")]
    assert messages[-1] == "stopped", messages[-5:]
    assert (tmp_path / "inventory.db").exists()


def test_a_busy_port_is_refused(tmp_path):
    layout = identities_in(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "NOTIFICATIONS_LISTEN": address, "SHOPMESH_DATA_DIR": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-m", "notifications"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        with layout.channel(address, "notifications") as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=20, wait_for_ready=True)
        second = subprocess.run(
            [sys.executable, "-m", "notifications"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 2
        assert address in second.stderr
    finally:
        first.terminate()
        first.wait(20)
