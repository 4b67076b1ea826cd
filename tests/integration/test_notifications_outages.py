"""The Notification service through outages of its own database, and an order event no
email can be written for: emails flow again by themselves, none lost, none sent twice,
and health tells the truth all along."""

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from notifications.main import SERVICE_NAME, create_app
from shopmesh.notifications.v1 import notifications_pb2 as npb
from shopmesh.notifications.v1 import notifications_pb2_grpc
from tests.helpers.databases import BACKENDS, database_url
from tests.helpers.in_process import service_channel
from tests.helpers.messages import create, product
from tests.helpers.waiting import eventually

Status = npb.Notification.Status
SERVING = health_pb2.HealthCheckResponse.SERVING
# Twice SQLite's busy timeout (5 s): every writer gives up at least once while it is held.
LOCK_SECONDS = 10.0
PG_DOWN_SECONDS = 3.0


@pytest.fixture
def service_env(tmp_path, envoy_tls):
    """Orders and Inventory on SQLite: the outages here are the Notification database's."""
    return {"SHOPMESH_DATA_DIR": str(tmp_path), "MESH_TLS_DIR": str(envoy_tls.directory)}


@pytest.fixture
async def stocked(inventory):
    await inventory.stub.CreateProduct(product("A", 1000))
    return inventory


@dataclass
class Service:
    app: object
    stub: notifications_pb2_grpc.NotificationServiceStub
    health: health_pb2_grpc.HealthStub

    async def statuses(self) -> set:
        """What its health service says, for the server and for the Notification service."""
        replies = [
            await self.health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            for name in ("", SERVICE_NAME)
        ]
        return {reply.status for reply in replies}

    async def listed(self, **filters) -> list:
        reply = await self.stub.ListNotifications(npb.ListNotificationsRequest(page_size=1000, **filters))
        return list(reply.notifications)


@contextlib.asynccontextmanager
async def notification_service(service_env, smtp, orders, **env):
    app = await create_app(
        {
            **service_env,
            **smtp.env,
            "NOTIFICATIONS_LISTEN": "127.0.0.1:0",
            "MESH_ADDRESS": orders.address,
            "NOTIFICATIONS_RETRY_SECONDS": "0.2",
            "NOTIFICATIONS_RETRY_MAX_SECONDS": "0.5",
            **env,
        }
    )
    await app.start()
    channel = service_channel(service_env, f"127.0.0.1:{app.port}")
    try:
        yield Service(app, notifications_pb2_grpc.NotificationServiceStub(channel), health_pb2_grpc.HealthStub(channel))
    finally:
        await channel.close()
        await app.stop(0)


async def place(orders, count: int = 1) -> list[str]:
    return [(await orders.stub.CreateOrder(create(A=1))).order_id for _ in range(count)]


def emailed_orders(received) -> Counter:
    """How many emails each order got (every order here has one event: its creation)."""
    return Counter(m.message_id.split(".")[0].lstrip("<") for m in received)


async def test_a_write_lock_held_past_the_busy_timeout_delays_emails_and_loses_none(
    orders, stocked, smtp, service_env, tmp_path
):
    async with notification_service(service_env, smtp, orders) as service:
        placed = await place(orders)
        await smtp.arrived(1, 10)
        # One notification recorded while the mail server is away: the sender has it in
        # hand when the lock comes, and sends it while it cannot record that it did.
        smtp.stop()
        placed += await place(orders)

        async def tried():
            found = await service.listed(order_id=placed[-1])
            return found and found[0].attempts >= 1

        assert await eventually(tried)
        # As a backup would: another connection holds the write lock.
        lock = sqlite3.connect(tmp_path / "notifications.db", isolation_level=None, timeout=10)
        health = set()
        try:
            lock.execute("BEGIN EXCLUSIVE")
            locked_at = time.monotonic()
            smtp.start()
            placed += await place(orders, 5)
            while time.monotonic() - locked_at < LOCK_SECONDS:
                health |= await service.statuses()
                await asyncio.sleep(0.5)
        finally:
            lock.close()  # rolls back: the lock is gone
        released = time.monotonic()
        received = await smtp.arrived(len(placed), 20)
        flowing = time.monotonic() - released
        health |= await service.statuses()

        async def all_sent():
            found = await service.listed()
            return len(found) == len(placed) and all(n.status == Status.STATUS_SENT for n in found)

        assert await eventually(all_sent)
        await asyncio.sleep(0.5)  # a resend, if any, would come now
        received = smtp.received()
    assert emailed_orders(received) == Counter(placed), f"{len(received)} emails for {len(placed)} orders"
    assert health == {SERVING}
    print(f"\nwrite lock {LOCK_SECONDS:.0f} s, {len(placed)} orders: every email {flowing:.2f} s after its release")


async def test_a_postgresql_restart_under_load_delays_emails_and_loses_none(
    orders,
    stocked,
    smtp,
    service_env,
    private_postgres,
):
    url = private_postgres.server.create_database("notifications")
    async with notification_service(service_env, smtp, orders, NOTIFICATIONS_DATABASE_URL=url) as service:
        placed: list[str] = []

        async def load():
            while not restarted.is_set() or len(placed) < 40:
                placed.extend(await place(orders))
                await asyncio.sleep(0.05)

        restarted = asyncio.Event()
        placing = asyncio.create_task(load())
        try:
            await smtp.arrived(5, 10)
            before = len(placed)
            await asyncio.to_thread(private_postgres.restart, PG_DOWN_SECONDS)
            back = time.monotonic()
            during = len(placed)
            restarted.set()
            await smtp.arrived(during, 20)
            flowing = time.monotonic() - back
        finally:
            restarted.set()
            await placing
        received = await smtp.arrived(len(placed), 20)

        async def all_sent():
            found = await service.listed()
            return len(found) == len(placed) and all(n.status == Status.STATUS_SENT for n in found)

        assert await eventually(all_sent)
        assert await service.statuses() == {SERVING}
        await asyncio.sleep(0.5)
        received = smtp.received()
    assert emailed_orders(received) == Counter(placed), f"{len(received)} emails for {len(placed)} orders"
    print(
        f"\nPostgreSQL down {PG_DOWN_SECONDS:.0f} s under load: {during - before} of {len(placed)} orders placed"
        f" meanwhile; their emails all sent {flowing:.2f} s after it was back"
    )


@pytest.fixture(params=BACKENDS)
def notifications_url(request, tmp_path):
    """The Notification database alone on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/notifications.db"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database("notifications")
    yield url
    server.drop_database(url)


def make_unrenderable(service_env, order_id: str) -> None:
    """The order's creation becomes a change to PENDING: no email is written for that
    (as from a damaged row, or an Order service newer than this one)."""
    engine = create_engine(database_url(service_env, "orders"))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE order_events SET type = 'STATUS_CHANGED' WHERE order_id = :order_id"), {"order_id": order_id}
        )
    engine.dispose()


async def test_an_event_no_email_can_be_written_for_is_failed_and_passed(
    orders, stocked, smtp, service_env, notifications_url
):
    placed = await place(orders, 3)
    make_unrenderable(service_env, placed[1])
    env = {"NOTIFICATIONS_DATABASE_URL": notifications_url}
    async with notification_service(service_env, smtp, orders, **env) as service:
        await smtp.arrived(2, 10)

        async def failed():
            return [n for n in await service.listed(order_id=placed[1]) if n.status == Status.STATUS_FAILED]

        refused = await eventually(failed)
        assert await service.statuses() == {SERVING}
    assert emailed_orders(smtp.received()) == Counter([placed[0], placed[2]])
    assert len(refused) == 1 and refused[0].attempts == 0 and refused[0].send_time.seconds == 0
    assert "PENDING" in refused[0].last_error, refused[0].last_error
    # Started again, it neither stops at that event nor sends it; the next order is emailed.
    async with notification_service(service_env, smtp, orders, **env):
        placed += await place(orders)
        await smtp.arrived(3, 10)
        await asyncio.sleep(0.5)
    assert emailed_orders(smtp.received()) == Counter([placed[0], placed[2], placed[3]])
