"""Wiring of the Inventory service: configuration, database, servicer, server."""

from collections.abc import Mapping

from inventory import faults
from inventory.storage import InventoryStore
from meshkit import config, migrations
from meshkit.database import Database
from meshkit.server import MeshServer, ServiceBinding, create_server, run
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc

SERVICE_NAME = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name


async def create_app(env: Mapping[str, str]) -> MeshServer:
    listen = config.address(env, "INVENTORY_LISTEN", "127.0.0.1:50052")
    db = Database(config.database_url(env, "INVENTORY_DATABASE_URL", "inventory.db"))
    migrations.upgrade(db, "inventory")
    servicer = faults.servicer_from_env(env, InventoryStore(db))
    app = create_server(
        listen,
        [ServiceBinding(SERVICE_NAME, servicer, inventory_pb2_grpc.add_InventoryServiceServicer_to_server)],
        error_domain="inventory.shopmesh",
    )
    app.on_close.append(db.close)
    return app


def main() -> None:
    run("inventory", create_app)
