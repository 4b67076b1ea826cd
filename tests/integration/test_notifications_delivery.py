"""The Notification service follows the order events and emails each one to a
real SMTP server, on both databases."""

import asyncio
import logging
import mailbox

import pytest

from devmesh.ports import free_port
from devmesh.smtp_sink import SmtpSink
from notifications.main import create_app
from orders.main import create_app as create_orders
from shopmesh.notifications.v1 import notifications_pb2 as npb
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.in_process import Running, service_channel
from tests.helpers.messages import create, product
from tests.helpers.waiting import eventually

Status = npb.Notification.Status


@pytest.fixture
async def stocked(inventory):
    await inventory.stub.CreateProduct(product("A", 100, units=2, nanos=500_000_000))
    return inventory


async def listed(notifications, **filters) -> list:
    reply = await notifications.stub.ListNotifications(npb.ListNotificationsRequest(page_size=1000, **filters))
    return list(reply.notifications)


async def test_every_status_change_is_emailed(orders, stocked, notifications, smtp):
    order = await orders.stub.CreateOrder(create(email="ann@example.com", A=3))
    await orders.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id))
    await orders.stub.ShipOrder(pb.ShipOrderRequest(order_id=order.order_id))
    received = await smtp.arrived(3, 10)
    short = order.order_id[:8]
    assert [m.subject for m in received] == [
        f"Order {short} received",
        f"Order {short} confirmed",
        f"Order {short} shipped",
    ]
    assert {m.to for m in received} == {"ann@example.com"}
    assert "3 x A at 2.50 EUR = 7.50 EUR" in received[0].body and "Total: 7.50 EUR" in received[0].body
    sent = await eventually(lambda: _all_sent(notifications, order.order_id, 3))
    assert sorted(n.message_id for n in sent) == sorted(m.message_id for m in received)
    assert [n.event_sequence for n in sent] == [3, 2, 1]
    assert all(n.attempts == 1 and n.send_time.seconds > 0 for n in sent)


async def _all_sent(notifications, order_id: str, count: int):
    found = await listed(notifications, order_id=order_id)
    return found if len(found) == count and all(n.status == Status.STATUS_SENT for n in found) else None


async def test_cancellation_is_emailed(orders, stocked, notifications, smtp):
    order = await orders.stub.CreateOrder(create(A=1))
    await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    received = await smtp.arrived(2, 10)
    assert received[-1].subject == f"Order {order.order_id[:8]} cancelled"


async def test_mail_server_down_keeps_notifications_pending_then_sends_them(
    orders: Running, stocked: Running, notifications: Running, smtp: SmtpSink
) -> None:
    smtp.stop()
    order = await orders.stub.CreateOrder(create(A=1))

    async def pending_and_tried() -> list[npb.Notification] | None:
        found = await listed(notifications, order_id=order.order_id)
        return found if found and found[0].attempts >= 2 else None

    pending = (await eventually(pending_and_tried))[0]
    assert pending.status == Status.STATUS_PENDING
    assert pending.last_error == (
        f"SMTPConnectError: Error connecting to 127.0.0.1 on port {smtp.port}: "
        f"[Errno 111] Connect call failed ('127.0.0.1', {smtp.port})"
    )
    smtp.start()
    sent = await eventually(lambda: _all_sent(notifications, order.order_id, 1))
    assert [n.last_error for n in sent or []] == [""]
    assert smtp.ids() == [pending.message_id]


async def test_after_max_attempts_a_notification_is_failed(orders, stocked, service_env, smtp):
    smtp.stop()
    env = {
        **service_env,
        **smtp.env,
        "NOTIFICATIONS_LISTEN": "127.0.0.1:0",
        "MESH_ADDRESS": orders.address,
        "NOTIFICATIONS_MAX_ATTEMPTS": "2",
        "NOTIFICATIONS_RETRY_SECONDS": "0.1",
    }
    app = await create_app(env)
    await app.start()
    try:
        await orders.stub.CreateOrder(create(A=1))
        async with service_channel(service_env, f"127.0.0.1:{app.port}") as channel:
            stub = notifications_pb2_grpc.NotificationServiceStub(channel)

            async def failed():
                reply = await stub.ListNotifications(npb.ListNotificationsRequest())
                return [n for n in reply.notifications if n.status == Status.STATUS_FAILED]

            gave_up = await eventually(failed)
        assert gave_up and gave_up[0].attempts == 2
    finally:
        await app.stop(0)


async def test_a_restarted_service_resumes_after_its_cursor(orders, stocked, service_env, smtp):
    env = {**service_env, **smtp.env, "NOTIFICATIONS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": orders.address}
    first = await create_app(env)
    await first.start()
    await orders.stub.CreateOrder(create(A=1))
    await smtp.arrived(1, 10)
    started = asyncio.get_running_loop().time()
    await first.stop(0)
    # Its open order event stream must not hold the shutdown.
    assert asyncio.get_running_loop().time() - started < 4
    for _ in range(3):
        await orders.stub.CreateOrder(create(A=1))
    second = await create_app(env)
    await second.start()
    try:
        received = await smtp.arrived(4, 10)
    finally:
        await second.stop(0)
    ids = [m.message_id for m in received]
    assert len(ids) == 4 and len(set(ids)) == 4


async def test_without_smtp_emails_go_to_a_maildir(orders, stocked, service_env, tmp_path):
    env = {**service_env, "NOTIFICATIONS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": orders.address}
    app = await create_app(env)
    await app.start()
    try:
        await orders.stub.CreateOrder(create(email="maildir@example.com", A=1))
        box = mailbox.Maildir(tmp_path / "maildir", create=False)

        async def delivered():
            return list(box)

        messages = await eventually(delivered)
    finally:
        await app.stop(0)
    assert len(messages) == 1 and messages[0]["To"] == "maildir@example.com"


async def test_a_stream_opened_before_its_peer_listens_waits_for_it(stocked, service_env, smtp, caplog):
    """As at `make up`, where the Notification service starts before Envoy: the
    stream opens when the peer is there, without a failed attempt in between."""
    orders_address = f"127.0.0.1:{free_port()}"
    env = {**service_env, **smtp.env, "NOTIFICATIONS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": orders_address}
    notifications = await create_app(env)
    await notifications.start()
    try:
        await asyncio.sleep(1.5)
        orders = await create_orders({**service_env, "ORDERS_LISTEN": orders_address, "MESH_ADDRESS": stocked.address})
        await orders.start()
        try:
            async with service_channel(service_env, orders_address) as channel:
                # In one process both channels share a connection, still in its reconnect back-off.
                await orders_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                    create(A=1), wait_for_ready=True, timeout=10
                )
            assert len(await smtp.arrived(1, 10)) == 1
            broke = [r for r in caplog.records if r.name == "notifications.consumer" and r.levelno >= logging.WARNING]
            assert not broke
        finally:
            await orders.stop(0)
    finally:
        await notifications.stop(0)
