"""Free loopback ports for meshes started on the fly (tests, benchmark).

A port the kernel hands out for `bind(0)` comes from its ephemeral range, the same
range every outgoing connection takes its local port from: between choosing such a
port and the server binding it, any connection (to PostgreSQL, between services)
may take it. Ports below that range are never given to outgoing connections, so a
port chosen there stays free until something binds it on purpose.
"""

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000  # clear of the well-known and registered ports services usually hold


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now, below the ephemeral range."""
    chosen: list[int] = []
    for port in random.Random().sample(range(LOWEST, max(ephemeral_start(), LOWEST + 1000)), k=1000):
        if is_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise OSError(f"no {count} free ports found below {ephemeral_start()}")


def free_port() -> int:
    return free_ports(1)[0]
