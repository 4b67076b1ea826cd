"""A service of ShopMesh in the test's own process, on a free port with its own database,
on mutual TLS with Envoy's identity (tests/conftest.py: envoy_tls), which the test's
channels present too."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from meshkit import mesh_tls
from meshkit.server import MeshServer

# Reservations wait a second for their order here (five minutes by default), so that
# tests can watch an orphan's stock come back.
RESERVATION_TTL_SECONDS = "1"


@dataclass
class Running:
    """A started service, a channel of the test's own to it, and its generated stub on that channel."""

    app: MeshServer
    channel: grpc.aio.Channel
    stub: Any

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"


def service_channel(env: Mapping[str, str], address: str) -> grpc.aio.Channel:
    """A channel of its own to an in-process service, presenting the identity the services
    of env serve with (Envoy's). Of its own: gRPC shares connections per address within a
    process, and a service in this process may have tried this address before it listened
    (Inventory following the Order service), leaving a shared one waiting out its back-off."""
    tls = mesh_tls.MeshTls(Path(env["MESH_TLS_DIR"]), mesh_tls.ENVOY)
    return mesh_tls.channel(tls, address, [("grpc.use_local_subchannel_pool", 1)], peer=tls.name)


async def start(
    create_app: Callable[[Mapping[str, str]], Awaitable[MeshServer]],
    env: Mapping[str, str],
    stub_class: Callable[[grpc.aio.Channel], Any],
) -> Running:
    """Builds the service create_app makes from env and starts it."""
    app = await create_app(env)
    await app.start()
    channel = service_channel(env, f"127.0.0.1:{app.port}")
    return Running(app, channel, stub_class(channel))


async def stop(running: Running) -> None:
    """Closes the test's channel, then stops the service at once (no grace)."""
    await running.channel.close()
    await running.app.stop(0)
