"""Envoy's way out of a pod (its preStop hook): fail its readiness, then wait.

    python -m devmesh.envoy_drain [--admin 127.0.0.1:9901] [--seconds 10]

POST /healthcheck/fail turns admin's /ready (and the ready listener) to 503, so the pod
leaves its Services' endpoints, and makes Envoy drain: open HTTP connections are told to
close (HTTP/2 GOAWAY, `connection: close`), so their clients reconnect to another replica.
The wait gives load balancers and kube-proxy time to stop sending new connections before
Kubernetes sends SIGTERM, on which Envoy exits at once.
"""

import argparse
import sys
import time
import urllib.request

ADMIN = "127.0.0.1:9901"
WAIT_SECONDS = 10.0


def fail_health(admin: str) -> None:
    request = urllib.request.Request(f"http://{admin}/healthcheck/fail", method="POST")
    with urllib.request.urlopen(request, timeout=2) as reply:
        reply.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.envoy_drain", description=__doc__.splitlines()[0])
    parser.add_argument("--admin", default=ADMIN, help=f"Envoy's admin address (default {ADMIN})")
    parser.add_argument(
        "--seconds", type=float, default=WAIT_SECONDS, help=f"then wait this long (default {WAIT_SECONDS:g})"
    )
    args = parser.parse_args(argv)
    try:
        fail_health(args.admin)
    except OSError as error:  # urllib's errors included
        # Envoy is gone already: nothing to drain, and nothing to wait for
        print(f"envoy_drain: {error}", file=sys.stderr)
        return 1
    time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
