"""The one Envoy template renders and validates for every environment."""

import subprocess

import pytest

from devmesh import envoy_config
from devmesh.envoy_config import EnvoyParams

COMPOSE = EnvoyParams(
    public="0.0.0.0:8080",
    mesh="0.0.0.0:8081",
    admin="0.0.0.0:9901",
    orders="orders:50051",
    inventory="inventory:50052",
    notifications="notifications:50053",
)


@pytest.mark.parametrize("params", [EnvoyParams(), COMPOSE], ids=["local", "compose"])
def test_rendered_config_passes_envoy_validate(params, tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_text(envoy_config.render(params))
    result = envoy_config.validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_params_come_from_the_documented_variables():
    params = envoy_config.params_from_env(
        {"ENVOY_PUBLIC_LISTEN": "127.0.0.1:1", "MESH_ADDRESS": "127.0.0.1:2", "ORDERS_LISTEN": "127.0.0.1:3", "INVENTORY_UPSTREAM": "inv:4"}
    )
    assert (params.public, params.mesh, params.orders, params.inventory) == ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "inv:4")
    assert params.admin == "127.0.0.1:9901"


def test_a_listener_needs_an_ip_address():
    with pytest.raises(ValueError, match="IP address"):
        envoy_config.render(EnvoyParams(public="localhost:8080"))


def test_cli_fails_with_one_line_on_a_bad_address(tmp_path):
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "devmesh.envoy_config", "--out", str(tmp_path / "e.yaml")],
        env={"ENVOY_PUBLIC_LISTEN": "nonsense"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
