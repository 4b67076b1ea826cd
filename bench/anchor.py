"""What the echo anchor needs now that every hop inside the mesh is mutual TLS: a
certificate that all three of Envoy's service clusters take, and, to measure what mutual
TLS costs, a second Envoy whose service clusters speak plaintext to the echo.

Neither is a ShopMesh option: ShopMesh has no switch to turn mutual TLS off. The
second Envoy's config is ShopMesh's own rendered one with the upstream TLS of the
service clusters cut out here, for the benchmark's echo only."""

import contextlib
import datetime as dt
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devmesh import credentials, envoy_config, mesh_identity
from devmesh.launcher import STOP_TIMEOUT_SECONDS, Mesh, MeshError, admin_get, cluster_health
from devmesh.paths import ROOT
from devmesh.ports import free_ports
from meshkit.mesh_tls import CA_FILE, CERT_FILE, ENVOY, KEY_FILE, spiffe_id

ECHO = "echo"
# it stands in for all three services: each cluster checks for its own service's SPIFFE ID
STANDS_IN_FOR = ("orders", "inventory", "notifications")
# the clusters of those services, each with the upstream TLS context of its service
SERVICE_CLUSTERS = ("orders", "orders_streams", "orders_events", "inventory", "notifications")
# what the launcher gives Envoy's certificate; a run ends long before
CERT_LIFETIME = mesh_identity.CERT_LIFETIME


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
    now = now or dt.datetime.now(dt.UTC)
    ca_cert = x509.load_pem_x509_certificate(identity.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(identity.ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = credentials.leaf_certificate(
        key, (ca_cert, ca_key), now, CERT_LIFETIME, ECHO,
        [*(x509.UniformResourceIdentifier(spiffe_id(name)) for name in STANDS_IN_FOR), x509.DNSName(ECHO)],
        [ExtendedKeyUsageOID.SERVER_AUTH],
    )
    directory = identity.directory(ECHO)
    mesh_identity.publish(directory, {
        CERT_FILE: (credentials.pem(cert), 0o644),
        KEY_FILE: (credentials.private_pem(key), 0o600),
        CA_FILE: (identity.bundle(ENVOY).read_text(), 0o644),
    })
    return EchoIdentity(directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE)


def without_upstream_tls(config: str) -> str:
    """A rendered Envoy config with the service clusters' transport_socket removed: they
    speak plaintext HTTP/2 (h2c) to their upstream. Every listener, filter and route is
    left as it was."""
    document = yaml.safe_load(config)
    clusters = {cluster["name"]: cluster for cluster in document["static_resources"]["clusters"]}
    for name in SERVICE_CLUSTERS:
        # a template without it would make the comparison one of mutual TLS with itself
        if "transport_socket" not in clusters[name]:
            raise ValueError(f"Envoy's cluster {name} has no upstream TLS to remove")
        del clusters[name]["transport_socket"]
    return yaml.safe_dump(document, sort_keys=False, width=200)


def write_plaintext_upstream(params: envoy_config.EnvoyParams, out: Path) -> None:
    """As envoy_config.write (the bootstrap and its mesh secrets beside it), without_upstream_tls."""
    secrets = envoy_config.secret_files(out)
    for name, text in envoy_config.render_secrets(params).items():
        secrets[name].write_text(text)
    out.write_text(without_upstream_tls(envoy_config.render(params, secrets)))


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
    pointed at upstream (the echo's plaintext address) without TLS. Stopped on exit."""
    public, public_tls, mesh_port, admin = (f"127.0.0.1:{port}" for port in free_ports(4))
    run_dir = mesh.run_dir
    env = mesh_identity.under(mesh.layout.mesh_identity, mesh.credentials.under(mesh.layout.env))
    params = replace(
        envoy_config.params_from_env(env), public=public, public_tls=public_tls, mesh=mesh_port, admin=admin,
        orders=upstream, inventory=upstream, notifications=upstream,
        access_log=str(run_dir / "envoy-plaintext-access.log"),
    )
    config_path = run_dir / "envoy-plaintext.yaml"
    write_plaintext_upstream(params, config_path)
    log_path = run_dir / "envoy-plaintext.log"
    with open(run_dir / "envoy-plaintext.out", "ab") as output:
        process = subprocess.Popen(
            [
                envoy_config.envoy_binary(), "-c", str(config_path), "--log-level", "warn", "--disable-hot-restart",
                "--log-path", str(log_path),
                # as the launcher's Envoy: the access log is read a second after the calls
                "--file-flush-interval-msec", "1000",
            ],
            cwd=ROOT, env=dict(mesh.layout.env), stdout=output, stderr=output, start_new_session=True,
        )
    envoy = PlaintextEnvoy(process, public, admin, Path(params.access_log))
    try:
        _wait_healthy(envoy, log_path, timeout)
        yield envoy
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(envoy: PlaintextEnvoy, log_path: Path, timeout: float) -> None:
    """Until it is live and its health checks (plaintext too) see the echo in every cluster."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = envoy.process.poll()
        if code is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise MeshError(f"the plaintext-upstream Envoy exited with status {code} while starting\n{tail}")
        try:
            health = cluster_health(envoy.admin)
            if admin_get(envoy.admin, "/ready").strip() == "LIVE" and health and all(
                hosts and all(hosts) for hosts in health.values()
            ):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise MeshError(f"the plaintext-upstream Envoy's clusters did not become healthy within {timeout:.0f}s")
