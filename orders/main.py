"""Wiring of the Order service: configuration, database, Inventory client, servicer, server."""

from collections.abc import Mapping

from meshkit import config, mesh_tls, migrations
from meshkit.database import Database
from meshkit.server import MeshServer, ServiceBinding, create_server, run
from orders import faults
from orders.api import OrderServicer
from orders.feed import ChangeFeed
from orders.inventory_client import InventoryClient
from orders.storage import OrderStore
from orders.watches import OpenWatches, WatchLimits
from orders.workflow import OrderWorkflow
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.notifications.v1 import notifications_pb2
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
# Envoy routes the public listener's reflection here, so this server also
# describes the other services of the mesh's public API.
MESH_API = [
    inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,
    notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
]


async def create_app(env: Mapping[str, str]) -> MeshServer:
    listen = config.address(env, "ORDERS_LISTEN", "127.0.0.1:50051")
    defaults = WatchLimits()
    watch_limits = WatchLimits(
        per_client=config.integer(env, "ORDERS_MAX_WATCHES_PER_CLIENT", defaults.per_client, minimum=1),
        total=config.integer(env, "ORDERS_MAX_WATCHES", defaults.total, minimum=1),
    )
    mesh = config.address(env, "MESH_ADDRESS", "127.0.0.1:8081")
    tls = mesh_tls.MeshTls.from_env(env, "orders")
    db = Database(config.database_url(env, "ORDERS_DATABASE_URL", "orders.db"))
    migrations.upgrade(db, "orders")
    store = OrderStore(db)
    feed = ChangeFeed(store)
    channel = mesh_tls.MeshChannel(tls, mesh)
    workflow = OrderWorkflow(store, faults.inventory_from_env(env, InventoryClient(channel)), on_change=feed.wake)
    servicer = OrderServicer(workflow, store, feed, OpenWatches(watch_limits))
    app = create_server(
        listen,
        [ServiceBinding(SERVICE_NAME, servicer, orders_pb2_grpc.add_OrderServiceServicer_to_server)],
        error_domain="orders.shopmesh",
        tls=tls,
        reflect_also=MESH_API,
    )
    app.background.append(channel.watch)
    app.background.append(feed.run)
    app.on_stopping.append(feed.close)
    app.on_close.extend([db.close, channel.close])
    return app


def main() -> None:
    run("orders", create_app)
