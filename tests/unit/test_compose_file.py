"""compose.yaml's promises that can be checked without running it (`make
compose-test` runs it): what is published, health, grace, and Envoy's config."""

import subprocess
import sys

import yaml

from devmesh import envoy_config
from devmesh.paths import ROOT
from meshkit.server import BACKGROUND_STOP_SECONDS, SHUTDOWN_DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS

SHOPMESH = ("orders", "inventory", "notifications", "envoy")


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_only_envoy_the_mail_ui_and_traces_are_published():
    services = compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"envoy", "mailpit", "jaeger"}
    assert services["jaeger"]["profiles"] == ["tracing"]
    admin = [port for port in services["envoy"]["ports"] if port.endswith(":9901")]
    assert admin and all(port.startswith("127.0.0.1:") for port in admin)


def test_every_shopmesh_process_is_health_checked_and_stopped_gracefully():
    services = compose()["services"]
    own_shutdown = SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + BACKGROUND_STOP_SECONDS
    for name in SHOPMESH:
        service = services[name]
        assert service["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "meshkit.probe"], name
        assert seconds(service["stop_grace_period"]) > own_shutdown, name
        assert service["build"]["args"]["BASE_IMAGE"].startswith("${BASE_IMAGE"), name
    for name in ("orders", "inventory", "notifications"):
        assert services["envoy"]["depends_on"][name] == {"condition": "service_healthy"}
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_envoy_config_of_the_compose_file_validates(tmp_path):
    """Rendered from the same template, with the envoy service's own environment,
    and run the way the container runs it (render, then exec Envoy)."""
    environment = compose()["services"]["envoy"]["environment"]
    env = {k: v for k, v in environment.items() if not v.startswith("${")}
    assert env["ORDERS_UPSTREAM"] == "orders:50051"
    out = tmp_path / "envoy.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "devmesh.envoy_config", "--out", str(out), "--exec", "--", "--mode", "validate"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration '" in result.stdout + result.stderr and "OK" in result.stdout + result.stderr
    assert 'address: "orders"' in out.read_text()
    assert envoy_config.params_from_env(env).public == "0.0.0.0:8080"
