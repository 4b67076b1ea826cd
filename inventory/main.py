"""Wiring of the Inventory service: configuration, database, servicer, the follower of
the order event stream, server."""

import datetime as dt
from collections.abc import Mapping

from inventory import faults
from inventory.order_events import OrderFollower
from inventory.storage import InventoryStore
from meshkit import config, mesh_tls, migrations, resume
from meshkit.database import Database
from meshkit.server import MeshServer, ServiceBinding, create_server, run
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc

SERVICE_NAME = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name
# How long a reservation waits for its order before its stock goes back.
RESERVATION_TTL_SECONDS = 300.0


def reservation_timing(env: Mapping[str, str]) -> tuple[dt.timedelta, dt.timedelta]:
    """How long a reservation waits for its order, and the grace after that before it is
    settled: time for a commit already under way in the Order service, and for the
    clocks of two machines (5 s, at most one wait)."""
    ttl = config.seconds(env, "INVENTORY_RESERVATION_TTL_SECONDS", RESERVATION_TTL_SECONDS)
    return dt.timedelta(seconds=ttl), dt.timedelta(seconds=min(5.0, ttl))


async def create_app(env: Mapping[str, str]) -> MeshServer:
    listen = config.address(env, "INVENTORY_LISTEN", "127.0.0.1:50052")
    mesh = config.address(env, "MESH_ADDRESS", "127.0.0.1:8081")
    tls = mesh_tls.MeshTls.from_env(env, "inventory")
    wait, grace = reservation_timing(env)
    db = Database(config.database_url(env, "INVENTORY_DATABASE_URL", "inventory.db"))
    migrations.upgrade(db, "inventory")
    store = InventoryStore(db)
    servicer = faults.servicer_from_env(env, store, wait)
    # the order event stream is followed over it: pings find a peer that froze
    channel = mesh_tls.MeshChannel(tls, mesh, options=resume.FOLLOWER_CHANNEL_OPTIONS)
    # expired reservations are looked for a few times per wait, at most every 10 s
    settle_every = min(max(wait.total_seconds() / 4, 0.5), 10.0)
    follower = OrderFollower(channel, store, settle_every, grace)
    app = create_server(
        listen,
        [ServiceBinding(SERVICE_NAME, servicer, inventory_pb2_grpc.add_InventoryServiceServicer_to_server)],
        error_domain="inventory.shopmesh",
        tls=tls,
    )
    app.background.append(channel.watch)
    app.background.extend([follower.follow, follower.settle_expired])
    app.on_close.extend([db.close, channel.close])
    return app


def main() -> None:
    run("inventory", create_app)
