"""A service started by hand or by `make up` writes to a terminal: there its log is one
readable line per record, unless SHOPMESH_LOG_FORMAT asks for JSON; a bad value of that
setting stops the service at start like any other setting."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from devmesh import mesh_identity
from devmesh.launcher import Layout
from devmesh.paths import ROOT
from devmesh.ports import free_port

TIME = r"\d\d:\d\d:\d\d\.\d{3}"
READABLE_SERVING = re.compile(
    TIME + r" inventory     INFO  serving port=\d+ services=\['shopmesh\.inventory\.v1\.InventoryService'\]"
)


def _read(primary: int, timeout: float) -> bytes:
    """What the pseudo-terminal has within timeout seconds; b"" once the process closed it."""
    ready, _, _ = select.select([primary], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(primary, 65536)
    except OSError:  # EIO: every writer has closed the terminal
        return b""


def run_on_a_terminal(data_dir: Path, env: dict[str, str]) -> list[str]:
    """The lines the Inventory service writes to a pseudo-terminal from its start until it
    stops on SIGTERM, sent once it serves."""
    layout = Layout.from_env({"SHOPMESH_DATA_DIR": str(data_dir)})
    mesh_identity.ensure(layout.mesh_identity)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SHOPMESH_DATA_DIR": str(data_dir),
            "INVENTORY_LISTEN": f"127.0.0.1:{free_port()}",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            **env,
        },
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while b"serving" not in output and time.monotonic() < deadline and process.poll() is None:
            output += _read(primary, 0.5)
        process.send_signal(signal.SIGTERM)
        while chunk := _read(primary, 20):
            output += chunk
        assert process.wait(20) == 0, output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    return output.decode().splitlines()


def test_a_service_on_a_terminal_writes_readable_lines(tmp_path: Path) -> None:
    lines = run_on_a_terminal(tmp_path, {})
    assert [line for line in lines if READABLE_SERVING.fullmatch(line)] != [], lines
    assert re.fullmatch(TIME + " inventory     INFO  stopped", lines[-1]), lines
    assert [line for line in lines if line.startswith("{")] == []


def test_json_on_a_terminal_when_asked_for(tmp_path: Path) -> None:
    lines = run_on_a_terminal(tmp_path, {"SHOPMESH_LOG_FORMAT": "json"})
    entries = [json.loads(line) for line in lines]
    assert [e["message"] for e in entries if e["logger"] == "meshkit.server"] == ["serving", "shutting down", "stopped"]
    assert {e["service"] for e in entries} == {"inventory"}


def test_a_bad_log_format_stops_the_service_at_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inventory"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SHOPMESH_DATA_DIR": str(tmp_path), "SHOPMESH_LOG_FORMAT": "yaml"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == "inventory: configuration error: SHOPMESH_LOG_FORMAT='yaml' must be one of: json, text\n"
    assert result.stdout == ""
