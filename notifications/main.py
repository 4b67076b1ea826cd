"""Wiring of the Notification service: configuration, database, servicer, server."""

from collections.abc import Mapping

from meshkit import config, migrations
from meshkit.database import Database
from meshkit.server import MeshServer, ServiceBinding, create_server, run
from notifications.api import NotificationServicer
from notifications.storage import NotificationStore
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc

SERVICE_NAME = notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


async def create_app(env: Mapping[str, str]) -> MeshServer:
    listen = config.address(env, "NOTIFICATIONS_LISTEN", "127.0.0.1:50053")
    db = Database(config.database_url(env, "NOTIFICATIONS_DATABASE_URL", "notifications.db"))
    migrations.upgrade(db, "notifications")
    servicer = NotificationServicer(NotificationStore(db))
    app = create_server(
        listen,
        [
            ServiceBinding(
                SERVICE_NAME, servicer, notifications_pb2_grpc.add_NotificationServiceServicer_to_server
            )
        ],
        error_domain="notifications.shopmesh",
    )
    app.on_close.append(db.close)
    return app


def main() -> None:
    run("notifications", create_app)
