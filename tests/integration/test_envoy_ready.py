"""Envoy's ready listener (ENVOY_READY_LISTEN) and its preStop (devmesh.envoy_drain), with a
real Envoy: a kubelet reads /ready from beyond loopback and nothing else of admin, and the
drain turns it to 503 before Envoy is stopped."""

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from devmesh import credentials, envoy_config, envoy_drain
from devmesh.envoy_config import EnvoyParams
from devmesh.ports import free_ports


def status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def envoy(tmp_path, identities):
    made = credentials.ensure(credentials.Credentials(tmp_path / "credentials"))
    public, public_tls, mesh, admin, ready = free_ports(5)
    params = replace(
        EnvoyParams(jwks_file=made.jwks, mesh_tls_dir=identities.directory("envoy")),
        public=f"127.0.0.1:{public}",
        public_tls=f"127.0.0.1:{public_tls}",
        mesh=f"127.0.0.1:{mesh}",
        admin=f"127.0.0.1:{admin}",
        ready=f"127.0.0.1:{ready}",
    )
    config = tmp_path / "envoy.yaml"
    envoy_config.write(params, config)
    process = subprocess.Popen(
        [envoy_config.envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if status(f"http://127.0.0.1:{ready}/ready") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "Envoy did not get ready"
            time.sleep(0.2)
        yield params
    finally:
        process.terminate()
        process.wait(10)


def test_the_ready_listener_answers_ready_and_nothing_else_of_admin(envoy):
    ready = f"http://{envoy.ready}"
    assert status(f"{ready}/ready") == 200
    for path in ("/stats", "/config_dump", "/clusters", "/quitquitquit", "/healthcheck/fail"):
        assert status(f"{ready}{path}", "POST" if path.startswith(("/quit", "/health")) else "GET") == 404, path
    assert status(f"{ready}/ready", "POST") == 404
    assert status(f"http://{envoy.admin}/ready") == 200  # still alive after all that


def test_the_drain_makes_envoy_unready_and_waits(envoy):
    started = time.monotonic()
    assert envoy_drain.main(["--admin", envoy.admin, "--seconds", "0.5"]) == 0
    assert time.monotonic() - started >= 0.5
    assert status(f"http://{envoy.ready}/ready") == 503


def test_the_drain_of_an_envoy_already_gone_says_so(capsys):
    (port,) = free_ports(1)
    assert envoy_drain.main(["--admin", f"127.0.0.1:{port}", "--seconds", "30"]) == 1
    assert "envoy_drain:" in capsys.readouterr().err
