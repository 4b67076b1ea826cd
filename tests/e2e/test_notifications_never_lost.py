"""Every order event becomes an email, whatever crashes: the Notification service
killed with SIGKILL mid-stream, the Order service restarted under it."""

import concurrent.futures
import threading
import time
from collections import Counter

import pytest

from devmesh import client
from devmesh.smtp_sink import SmtpSink
from shopmesh.notifications.v1 import notifications_pb2 as npb
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.databases import BACKENDS
from tests.helpers.mesh import start_mesh, stubs_for

ORDERS = 300


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(params=BACKENDS)
def mail_mesh(request, tmp_path, smtp):
    """A mesh of its own, sending to the test's SMTP server; the tests kill its processes."""
    yield from start_mesh(request, tmp_path, request.param, {**smtp.env, "NOTIFICATIONS_RETRY_SECONDS": "0.2"})


def place_orders(stubs, product_id: str, count: int, workers: int = 6) -> list[str]:
    def one(_):
        request = pb.CreateOrderRequest(
            customer_email="crash@example.com", items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]
        )
        return stubs.orders.CreateOrder(request, timeout=15).order_id

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def all_notifications(stubs) -> list:
    found, token = [], ""
    while True:
        page = stubs.notifications.ListNotifications(
            npb.ListNotificationsRequest(page_size=1000, page_token=token), timeout=10
        )
        found += page.notifications
        token = page.next_page_token
        if not token:
            return found


def wait_all_sent(stubs, count: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = all_notifications(stubs)
        if len(found) >= count and all(n.status == npb.Notification.STATUS_SENT for n in found):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_sigkill_of_notifications_loses_no_email(mail_mesh, smtp, new_product_in):
    mesh = mail_mesh
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = new_product_in(stubs, ORDERS)
        kills = 0

        def killer() -> None:
            nonlocal kills
            for threshold in (ORDERS // 3, 2 * ORDERS // 3):
                while len(smtp.received()) < threshold:
                    time.sleep(0.01)
                mesh.kill("notifications")
                kills += 1
                time.sleep(0.3)
                mesh.start_service("notifications")
                # back for clients only once Envoy's health check has seen it again
                mesh.wait_envoy_healthy(30)

        chaos = threading.Thread(target=killer)
        chaos.start()
        placed = place_orders(stubs, product_id, ORDERS)
        chaos.join(120)
        assert kills == 2

        notifications = wait_all_sent(stubs, ORDERS)
        assert len(notifications) == ORDERS
        assert all(n.status == npb.Notification.STATUS_SENT for n in notifications)
        received = smtp.wait_for(ORDERS, 30)
    counts = Counter(m.message_id for m in received)
    assert set(counts) == {n.message_id for n in notifications}
    assert {m.message_id.split(".")[0].lstrip("<") for m in received} == set(placed)
    duplicates = sum(c - 1 for c in counts.values())
    # A resend only where a kill fell between the server's acceptance and the commit.
    assert duplicates <= kills, counts.most_common(3)


def test_orders_restarted_mid_stream_loses_no_email(mail_mesh, smtp, new_product_in):
    mesh = mail_mesh
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = new_product_in(stubs, 100)
        first = place_orders(stubs, product_id, 20)
        smtp.wait_for(20, 30)
        mesh.stop_process("orders")
        mesh.start_service("orders")
        mesh.wait_envoy_healthy(30)
        second = place_orders(stubs, product_id, 20)
        notifications = wait_all_sent(stubs, 40)
        received = smtp.wait_for(40, 30)
    assert len(notifications) == 40
    assert sorted(n.order_id for n in notifications) == sorted(first + second)
    assert Counter(m.message_id for m in received).most_common(1)[0][1] == 1
