"""compose.yaml's promises that can be checked without running it (`make
compose-test` runs it): what is published, health, grace, and Envoy's config."""

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from devmesh import envoy_config
from devmesh.paths import ROOT
from meshkit.server import BACKGROUND_STOP_SECONDS, SHUTDOWN_DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS

SHOPMESH = ("orders", "inventory", "notifications", "envoy")
# ${NAME}, ${NAME:-default}, ${NAME-default}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
# what a user sets to use their own identity provider instead of the development keys
IDENTITY_VARIABLES = ("SHOPMESH_JWKS_URL", "SHOPMESH_JWT_ISSUER", "SHOPMESH_JWT_AUDIENCE", "SHOPMESH_JWT_ROLES_CLAIM")


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def interpolated(value: str, user_env: Mapping[str, str]) -> str:
    """What compose makes of a value, given what the user set (unset or empty: the default)."""
    return INTERPOLATION.sub(lambda match: user_env.get(match[1]) or match[2] or "", value)


def image_env(name: str) -> str:
    """A variable the Dockerfile sets in the image (ENV NAME=value)."""
    return re.search(rf"\b{name}=(\S+)", (ROOT / "Dockerfile").read_text())[1]


def envoy_as_compose_runs_it(tmp_path: Path, user_env: Mapping[str, str] = {}) -> tuple[dict[str, str], dict]:
    """Runs the envoy service's own command with its own environment (as compose
    interpolates it from user_env), Envoy validating instead of serving; returns that
    environment and the rendered config. The data directory is tmp_path's."""
    service = compose()["services"]["envoy"]
    env = {name: interpolated(str(value), user_env) for name, value in service["environment"].items()}
    command = list(service["command"])
    command[command.index("--out") + 1] = str(tmp_path / "envoy.yaml")
    command[command.index("--"):] = ["--", "--mode", "validate"]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        env={**env, "SHOPMESH_DATA_DIR": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(command)}:\n{output}"
    assert "configuration '" in output and "OK" in output
    return env, yaml.safe_load((tmp_path / "envoy.yaml").read_text())


def listeners(config: dict) -> dict[int, dict]:
    """Envoy's listeners by port."""
    return {item["address"]["socket_address"]["port_value"]: item for item in config["static_resources"]["listeners"]}


def test_only_envoy_the_mail_ui_and_traces_are_published():
    services = compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"envoy", "mailpit", "jaeger"}
    assert services["jaeger"]["profiles"] == ["tracing"]
    admin = [port for port in services["envoy"]["ports"] if port.endswith(":9901")]
    assert admin and all(port.startswith("127.0.0.1:") for port in admin)
    # the public API is published on its TLS listener only
    public = [port for port in services["envoy"]["ports"] if not port.endswith(":9901")]
    assert public == ["${SHOPMESH_PUBLIC_PORT:-8443}:8443"]


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


def test_envoy_config_of_the_compose_file_validates_and_publishes_only_tls(tmp_path):
    """Rendered from the same template, with the envoy service's own environment as
    compose gives it when the user sets nothing, and run the way the container runs it
    (make the development credentials, render, then exec Envoy)."""
    env, config = envoy_as_compose_runs_it(tmp_path)
    assert env["ORDERS_UPSTREAM"] == "orders:50051"
    upstreams = {item["name"]: item["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                 for item in config["static_resources"]["clusters"] if item["name"] in ("orders", "inventory")}
    assert upstreams["orders"]["socket_address"]["address"] == "orders"
    params = envoy_config.params_from_env(env)
    assert (params.public, params.public_tls) == ("127.0.0.1:8080", "0.0.0.0:8443")
    # made on first start in the data directory, which is the volume's mount point
    credentials = tmp_path / "data" / "credentials"
    assert (credentials / "auth" / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    assert (credentials / "tls" / "ca.pem").exists()
    volumes = compose()["services"]["envoy"]["volumes"]
    assert f"envoy-credentials:{image_env('SHOPMESH_DATA_DIR')}" in volumes
    assert "envoy-credentials" in compose()["volumes"]

    by_port = listeners(config)
    plaintext = by_port[8080]
    assert plaintext["address"]["socket_address"]["address"] == "127.0.0.1"
    assert "transport_socket" not in plaintext["filter_chains"][0]
    for published in compose()["services"]["envoy"]["ports"]:
        host_side, _, container_port = interpolated(published, {}).rpartition(":")
        if int(container_port) == 9901:  # admin, never public
            assert host_side.startswith("127.0.0.1:")
            continue
        listener = by_port[int(container_port)]
        assert listener["address"]["socket_address"]["address"] == "0.0.0.0", published
        assert all(chain["transport_socket"]["name"] == "envoy.transport_sockets.tls"
                   for chain in listener["filter_chains"]), f"{published} is not TLS"


def test_a_users_identity_provider_replaces_the_development_keys(tmp_path):
    environment = compose()["services"]["envoy"]["environment"]
    for name in IDENTITY_VARIABLES:
        assert environment[name] == f"${{{name}:-}}", name
    _, config = envoy_as_compose_runs_it(tmp_path, {
        "SHOPMESH_JWKS_URL": "https://idp.example.com/realms/shop/protocol/openid-connect/certs",
        "SHOPMESH_JWT_ISSUER": "https://idp.example.com/realms/shop",
        "SHOPMESH_JWT_ROLES_CLAIM": "realm_access.roles",
    })
    tls_listener = listeners(config)[8443]
    jwt_filter = next(f for f in tls_listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
                      if f["name"] == "envoy.filters.http.jwt_authn")
    for provider in jwt_filter["typed_config"]["providers"].values():
        assert provider["issuer"] == "https://idp.example.com/realms/shop"
        assert provider["remote_jwks"]["http_uri"]["uri"].startswith("https://idp.example.com/")
        assert "local_jwks" not in provider
