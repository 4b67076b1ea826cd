"""What the echo anchor needs now that every hop inside the mesh is mutual TLS: a
certificate that all three of Envoy's service clusters take, and, to measure what mutual
TLS costs, a second Envoy whose service clusters speak plaintext to the echo.

Neither is a ShopMesh option: ShopMesh has no switch to turn mutual TLS off. The
second Envoy's config is ShopMesh's own rendered one with the upstream TLS of the
service clusters cut out here, for the benchmark's echo only."""

import contextlib
import datetime as dt
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devmesh import envoy_config, mesh_identity
from devmesh.launcher import Mesh
from devmesh.ports import free_ports
from meshkit.mesh_tls import spiffe_id

ECHO = "echo"
PLAINTEXT_ENVOY = "envoy-plaintext"
# it stands in for all three services: each cluster checks for its own service's SPIFFE ID
STANDS_IN_FOR = ("orders", "inventory", "notifications")


@dataclass(frozen=True)
class EchoIdentity:
    cert: Path
    key: Path
    ca: Path


def echo_identity(identity: mesh_identity.MeshIdentity, now: dt.datetime | None = None) -> EchoIdentity:
    """A server certificate for the echo, signed by the mesh CA of identity (which the
    launcher made), naming the three services' SPIFFE IDs and the DNS name "echo" (what
    the launcher's health check takes it for); published into the mesh's identities as
    "echo", with the CA bundle Envoy trusts, whose certificates the echo requires of its callers."""
    mesh_identity.issue(
        identity,
        ECHO,
        [*(x509.UniformResourceIdentifier(spiffe_id(name)) for name in STANDS_IN_FOR), x509.DNSName(ECHO)],
        [ExtendedKeyUsageOID.SERVER_AUTH],
        now,
    )
    return EchoIdentity(identity.cert(ECHO), identity.key(ECHO), identity.bundle(ECHO))


def without_upstream_tls(config: str) -> str:
    """A rendered Envoy config with the service clusters' transport_socket removed: they
    speak plaintext HTTP/2 (h2c) to their upstream. Every listener, filter and route is
    left as it was."""
    document = yaml.safe_load(config)
    clusters = {cluster["name"]: cluster for cluster in document["static_resources"]["clusters"]}
    for name in envoy_config.SERVICE_CLUSTERS:
        # a template without it would make the comparison one of mutual TLS with itself
        if "transport_socket" not in clusters[name]:
            raise ValueError(f"Envoy's cluster {name} has no upstream TLS to remove")
        del clusters[name]["transport_socket"]
    return yaml.safe_dump(document, sort_keys=False, width=200)


def write_plaintext_upstream(params: envoy_config.EnvoyParams, out: Path) -> None:
    """As envoy_config.write (the bootstrap and its mesh secrets beside it), without_upstream_tls."""
    envoy_config.write(params, out)
    out.write_text(without_upstream_tls(out.read_text()))


@dataclass(frozen=True)
class PlaintextEnvoy:
    """The second Envoy: ShopMesh's config, its service clusters in plaintext."""

    process: subprocess.Popen
    public: str
    admin: str
    access_log: Path


@contextlib.contextmanager
def plaintext_upstream_envoy(mesh: Mesh, upstream: str, timeout: float = 30.0) -> Iterator[PlaintextEnvoy]:
    """Beside mesh's own Envoy, on ports of its own: the same config (the same keys, token
    check, limits and routes) rendered for mesh's environment, every service cluster
    pointed at upstream (the echo's plaintext address) without TLS. A process of mesh,
    stopped on exit."""
    public, public_tls, mesh_port, admin = (f"127.0.0.1:{port}" for port in free_ports(4))
    env = mesh_identity.under(mesh.layout.mesh_identity, mesh.credentials.under(mesh.layout.env))
    params = replace(
        envoy_config.params_from_env(env),
        public=public,
        public_tls=public_tls,
        mesh=mesh_port,
        admin=admin,
        orders=upstream,
        inventory=upstream,
        notifications=upstream,
        access_log=str(mesh.run_dir / "envoy-plaintext-access.log"),
    )
    config_path = mesh.run_dir / f"{PLAINTEXT_ENVOY}.yaml"
    write_plaintext_upstream(params, config_path)
    mesh.spawn_envoy(PLAINTEXT_ENVOY, config_path)
    try:
        mesh.wait_envoy_healthy(timeout, PLAINTEXT_ENVOY, admin)
        yield PlaintextEnvoy(mesh.processes[PLAINTEXT_ENVOY], public, admin, Path(params.access_log))
    finally:
        mesh.stop_process(PLAINTEXT_ENVOY)
