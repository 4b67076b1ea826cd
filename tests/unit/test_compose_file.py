"""compose.yaml's promises that can be checked without running it (`make
compose-test` runs it): what is published, health, grace, Envoy's config, and who
holds which mesh identity."""

import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from devmesh import envoy_config, mesh_identity
from devmesh.mesh_identity import IDENTITIES, MeshIdentity
from devmesh.paths import ROOT
from meshkit import mesh_tls
from meshkit.server import BACKGROUND_STOP_SECONDS, SHUTDOWN_DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS

SHOPMESH = ("orders", "inventory", "notifications", "envoy")
SERVICES = ("orders", "inventory", "notifications")
# the container that makes the mesh CA and every identity, before any of SHOPMESH starts
INIT = "mesh-identity"
# the volume of the mesh CA (its key too), and each identity's
CA_VOLUME = "mesh-ca"
IDENTITY_VOLUMES = {name: f"mesh-{name}" for name in IDENTITIES}
# where each process is told to find its identity
TLS_DIR_VARIABLE = {"envoy": "ENVOY_MESH_TLS_DIR", **dict.fromkeys(SERVICES, "MESH_TLS_DIR")}
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


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """A service's named volumes: volume -> (where it is mounted, read-only)."""
    found = {}
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        if not source.startswith((".", "/")):
            found[source] = (target, "ro" in options)
    return found


def envoy_as_compose_runs_it(tmp_path: Path, user_env: Mapping[str, str] = {}) -> tuple[dict[str, str], dict]:
    """Runs the envoy service's own command with its own environment (as compose
    interpolates it from user_env), Envoy validating instead of serving; returns that
    environment and the rendered config. The data directory is tmp_path's; Envoy's mesh
    identity, which mesh-identity makes into its volume, is made in tmp_path/mesh and
    named where the volume would be mounted."""
    service = compose()["services"]["envoy"]
    env = {name: interpolated(str(value), user_env) for name, value in service["environment"].items()}
    identity = mesh_identity.ensure(MeshIdentity(tmp_path / "mesh"))
    command = list(service["command"])
    command[command.index("--out") + 1] = str(tmp_path / "envoy.yaml")
    command[command.index("--") :] = ["--", "--mode", "validate"]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        env={
            **env,
            "SHOPMESH_DATA_DIR": str(tmp_path / "data"),
            "ENVOY_MESH_TLS_DIR": str(identity.directory("envoy")),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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
    upstreams = {
        item["name"]: item["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        for item in config["static_resources"]["clusters"]
        if item["name"] in ("orders", "inventory")
    }
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
    # the mesh identity is the one mesh-identity made, not a second CA of Envoy's own
    assert not (credentials / "mesh").exists()
    secrets = envoy_config.secret_files(tmp_path / "envoy.yaml")
    identity = yaml.safe_load(secrets["mesh_identity"].read_text())["resources"][0]["tls_certificate"]
    assert identity["private_key"]["filename"] == str((tmp_path / "mesh" / "envoy").resolve() / "key.pem")

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
        assert all(
            chain["transport_socket"]["name"] == "envoy.transport_sockets.tls" for chain in listener["filter_chains"]
        ), f"{published} is not TLS"


def test_a_users_identity_provider_replaces_the_development_keys(tmp_path):
    environment = compose()["services"]["envoy"]["environment"]
    for name in IDENTITY_VARIABLES:
        assert environment[name] == f"${{{name}:-}}", name
    _, config = envoy_as_compose_runs_it(
        tmp_path,
        {
            "SHOPMESH_JWKS_URL": "https://idp.example.com/realms/shop/protocol/openid-connect/certs",
            "SHOPMESH_JWT_ISSUER": "https://idp.example.com/realms/shop",
            "SHOPMESH_JWT_ROLES_CLAIM": "realm_access.roles",
        },
    )
    tls_listener = listeners(config)[8443]
    jwt_filter = next(
        f
        for f in tls_listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        if f["name"] == "envoy.filters.http.jwt_authn"
    )
    for provider in jwt_filter["typed_config"]["providers"].values():
        assert provider["issuer"] == "https://idp.example.com/realms/shop"
        assert provider["remote_jwks"]["http_uri"]["uri"].startswith("https://idp.example.com/")
        assert "local_jwks" not in provider


def test_mesh_identity_runs_first_and_makes_every_identity_into_its_volume(tmp_path):
    """The init container's own command, run with the image's data directory moved to
    tmp_path: each volume's mount point receives that identity (the CA's, the CA)."""
    services = compose()["services"]
    init = services[INIT]
    assert init["image"] == services["orders"]["image"]
    assert init["restart"] == "no" and not init.get("ports") and "healthcheck" not in init
    # it holds the CA's key, and needs no network
    assert init["network_mode"] == "none"
    # the image's ENTRYPOINT, with the module: `run --rm mesh-identity --rotate` passes flags only
    entrypoint = init["entrypoint"]
    assert entrypoint == [
        *re.search(r"^ENTRYPOINT (.+)$", (ROOT / "Dockerfile").read_text(), re.M)[1]
        .strip("[]")
        .replace('"', "")
        .split(", "),
        "devmesh.mesh_identity",
    ]
    assert "command" not in init

    image_root = mesh_identity.for_data_dir(Path(image_env("SHOPMESH_DATA_DIR"))).root
    expected = {CA_VOLUME: (str(image_root / "ca"), False)}
    expected |= {volume: (str(image_root / name), False) for name, volume in IDENTITY_VOLUMES.items()}
    assert mounts(init) == expected
    assert set(expected) <= set(compose()["volumes"])
    # each mount point is in the image, owned by shopmesh: a new volume takes that owner
    instructions = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    made = re.search(r"install -d -o shopmesh -g shopmesh -m 0700 ([^\n&]+)", instructions)
    assert made, "the Dockerfile makes no directories for the mesh volumes"
    assert {target for target, _ in expected.values()} <= set(made[1].split())

    # run as compose runs it, each mount point standing for its volume
    data = tmp_path / "data"
    run = [sys.executable, *entrypoint[1:]]
    result = subprocess.run(
        run, env={"SHOPMESH_DATA_DIR": str(data)}, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    volume_dirs = {
        volume: data / Path(target).relative_to(image_env("SHOPMESH_DATA_DIR"))
        for volume, (target, _) in expected.items()
    }
    assert {p.name for p in volume_dirs[CA_VOLUME].iterdir()} == {"ca.pem", "ca-key.pem"}
    for name, volume in IDENTITY_VOLUMES.items():
        files = {p.name for p in volume_dirs[volume].rglob("*")}
        assert {"cert.pem", "key.pem", "ca.pem"} <= files and "ca-key.pem" not in files, name
        assert stat.S_IMODE((volume_dirs[volume] / "key.pem").stat().st_mode) == 0o600
        mesh_tls.MeshTls(volume_dirs[volume], name).material()

    # `docker compose run --rm mesh-identity --rotate`: new certificates, the same CA
    before = {volume: (volume_dirs[volume] / "cert.pem").read_bytes() for volume in IDENTITY_VOLUMES.values()}
    ca = (volume_dirs[CA_VOLUME] / "ca.pem").read_bytes()
    result = subprocess.run(
        [*run, "--rotate"],
        env={"SHOPMESH_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all((volume_dirs[v] / "cert.pem").read_bytes() != before[v] for v in IDENTITY_VOLUMES.values())
    assert (volume_dirs[CA_VOLUME] / "ca.pem").read_bytes() == ca


def test_each_process_mounts_only_its_own_identity_read_only_and_waits_for_it():
    services = compose()["services"]
    mesh_volumes = {CA_VOLUME, *IDENTITY_VOLUMES.values()}
    for name, service in services.items():
        held = {volume: mount for volume, mount in mounts(service).items() if volume in mesh_volumes}
        if name == INIT:
            continue
        if name not in SHOPMESH:
            assert not held, f"{name} mounts {held}"
            continue
        # its own identity, read-only, where its variable says; not the CA's key, no other's
        target = service["environment"][TLS_DIR_VARIABLE[name]]
        assert held == {IDENTITY_VOLUMES[name]: (target, True)}, name
        assert service["depends_on"][INIT] == {"condition": "service_completed_successfully"}, name
    # the operator's identity and the CA are given to no running process
    holders = {volume: [name for name, s in services.items() if volume in mounts(s)] for volume in mesh_volumes}
    assert holders[CA_VOLUME] == [INIT]
    assert holders[IDENTITY_VOLUMES["operator"]] == [INIT]


def test_the_healthchecks_speak_mutual_tls_as_the_service_itself():
    services = compose()["services"]
    for name in SERVICES:
        listen = services[name]["environment"][f"{name.upper()}_LISTEN"]
        port = listen.rpartition(":")[2]
        assert services[name]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "-m",
            "meshkit.probe",
            "grpc",
            f"127.0.0.1:{port}",
            name,
        ], name
