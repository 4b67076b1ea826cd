"""What `make up` runs (`python -m devmesh`): the whole mesh in the foreground,
demo data once, Ctrl-C stops every process, data kept across restarts."""

import signal
import socket
import subprocess
import sys
import threading
import urllib.request

from devmesh.launcher import ROOT, Layout


def start(env: dict) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devmesh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("ShopMesh is up."):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(90):
        process.kill()
        process.wait()
        raise AssertionError("mesh did not come up:\n" + "".join(lines))
    return process, lines


def refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def products(layout: Layout) -> bytes:
    with urllib.request.urlopen(f"http://{layout.public}/v1/products", timeout=10) as reply:
        return reply.read()


def test_up_loads_demo_data_once_and_ctrl_c_stops_everything(tmp_path):
    # make up's own database is SQLite; every service runs on PostgreSQL in the other tests
    layout = Layout.on_free_ports({"PATH": "/usr/bin:/bin", "SHOPMESH_DATA_DIR": str(tmp_path)})
    env = dict(layout.env)
    for attempt in range(2):
        process, lines = start(env)
        try:
            assert b"WIDGET-1" in products(layout)
            process.send_signal(signal.SIGINT)
            assert process.wait(60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output = "".join(lines)
        # Demo products only go into an empty catalogue: the second start finds them.
        assert ("Loaded demo products" in output) == (attempt == 0)
        assert "Stopped: envoy (exit 0), notifications (exit 0), orders (exit 0), inventory (exit 0)" in output
        for name in (
            "ENVOY_PUBLIC_LISTEN",
            "MESH_ADDRESS",
            "ENVOY_ADMIN_LISTEN",
            "ORDERS_LISTEN",
            "INVENTORY_LISTEN",
            "NOTIFICATIONS_LISTEN",
        ):
            assert refused(layout.address(name)), f"{name} still answers after Ctrl-C"
    assert (tmp_path / "inventory.db").exists() and (tmp_path / "credentials" / "auth" / "signing-key.pem").exists()
