"""A container healthcheck: exit 0 when the target is healthy, 1 when not.

    python -m meshkit.probe grpc 127.0.0.1:50051 [SERVICE]   # standard gRPC health check
    python -m meshkit.probe http http://127.0.0.1:9901/ready  # an HTTP 200 (Envoy's admin)
"""

import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 2.0


def serving(channel: grpc.Channel, service: str = "") -> bool:
    """One standard health check over channel: SERVING, or not (any error included)."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS
        )
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def grpc_serving(address: str, service: str = "") -> bool:
    with grpc.insecure_channel(address) as channel:
        return serving(channel, service)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            return reply.status == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "grpc":
        healthy = grpc_serving(*argv[1:3])
    elif len(argv) == 2 and argv[0] == "http":
        healthy = http_ok(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
