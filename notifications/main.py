"""Wiring of the Notification service: configuration, database, the event
consumer and email sender, servicer, server."""

from collections.abc import Mapping

from meshkit import config, mesh_tls, migrations, resume
from meshkit.database import Database
from meshkit.server import MeshServer, ServiceBinding, create_server, run
from notifications.api import NotificationServicer
from notifications.consumer import OrderEventConsumer
from notifications.domain import RetryPolicy
from notifications.mailer import MaildirMailer, SmtpMailer
from notifications.sender import Sender
from notifications.storage import NotificationStore
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc

SERVICE_NAME = notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


def mailer_from_env(env: Mapping[str, str]) -> SmtpMailer | MaildirMailer:
    """SMTP when SMTP_HOST is set, else a Maildir in the data directory."""
    host = config.get(env, "SMTP_HOST", "")
    if host:
        return SmtpMailer(host, config.integer(env, "SMTP_PORT", 25, minimum=1))
    return MaildirMailer(config.data_dir(env) / "maildir")


def retry_policy_from_env(env: Mapping[str, str]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=config.integer(env, "NOTIFICATIONS_MAX_ATTEMPTS", 10, minimum=1),
        first_delay=config.seconds(env, "NOTIFICATIONS_RETRY_SECONDS", 2.0),
        max_delay=config.seconds(env, "NOTIFICATIONS_RETRY_MAX_SECONDS", 300.0),
    )


async def create_app(env: Mapping[str, str]) -> MeshServer:
    listen = config.address(env, "NOTIFICATIONS_LISTEN", "127.0.0.1:50053")
    mesh = config.address(env, "MESH_ADDRESS", "127.0.0.1:8081")
    tls = mesh_tls.MeshTls.from_env(env, "notifications")
    sender_address = config.get(env, "SMTP_FROM", "ShopMesh <orders@shopmesh.example>")
    mailer = mailer_from_env(env)
    policy = retry_policy_from_env(env)
    db = Database(config.database_url(env, "NOTIFICATIONS_DATABASE_URL", "notifications.db"))
    migrations.upgrade(db, "notifications")
    store = NotificationStore(db)
    sender = Sender(store, mailer, sender_address, policy)
    # keepalive: an order event stream held by a frozen Order replica is noticed, and resumed
    channel = mesh_tls.MeshChannel(tls, mesh, options=resume.FOLLOWER_CHANNEL_OPTIONS)
    consumer = OrderEventConsumer(channel, store, on_recorded=sender.wake)
    app = create_server(
        listen,
        [
            ServiceBinding(
                SERVICE_NAME,
                NotificationServicer(store),
                notifications_pb2_grpc.add_NotificationServiceServicer_to_server,
            )
        ],
        error_domain="notifications.shopmesh",
        tls=tls,
    )
    app.background.append(channel.watch)
    app.background.extend([consumer.run, sender.run])
    app.on_close.extend([mailer.close, db.close, channel.close])
    return app


def main() -> None:
    run("notifications", create_app)
