"""A container healthcheck: exit 0 when the target is healthy, 1 when not.

    python -m meshkit.probe grpc 127.0.0.1:50051 orders [SERVICE]  # standard gRPC health check
    python -m meshkit.probe http http://127.0.0.1:9901/ready  # an HTTP 200 (Envoy's admin)

A gRPC probe speaks mutual TLS as the named service itself (its identity from
MESH_TLS_DIR or the data directory), the one caller besides Envoy and operators that a
service admits.
"""

import os
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshkit import config, mesh_tls

TIMEOUT_SECONDS = 2.0


def serving(channel: grpc.Channel, service: str = "") -> bool:
    """One standard health check over channel: SERVING, or not (any error included)."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS
        )
    except grpc.RpcError:
        return False
    # grpcio-health-checking ships no type stubs: its status is an enum's int
    status: int = reply.status
    return status == int(health_pb2.HealthCheckResponse.SERVING)


def secure_channel(address: str, tls: mesh_tls.MeshTls, peer: str) -> grpc.Channel:
    """A blocking channel to peer (a service's name) at address, presenting tls."""
    return grpc.secure_channel(address, tls.channel_credentials(), options=[mesh_tls.server_name_option(peer)])


def grpc_serving(address: str, name: str, service: str = "") -> bool:
    with secure_channel(address, mesh_tls.MeshTls.from_env(os.environ, name), name) as channel:
        return serving(channel, service)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            status: int = reply.status  # typeshed leaves urlopen's reply untyped (it depends on the scheme)
            return status == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    try:
        if len(argv) in (3, 4) and argv[0] == "grpc":
            healthy = grpc_serving(*argv[1:])
        elif len(argv) == 2 and argv[0] == "http":
            healthy = http_ok(argv[1])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except config.ConfigError as error:
        print(f"probe: {error}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
