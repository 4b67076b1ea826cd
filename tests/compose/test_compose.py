"""`make compose-test`: the real compose.yaml, run with podman on this machine,
used as a client would use it through Envoy's published port."""

import json
import time
import urllib.request

import grpc
import pytest
from google.type import money_pb2

from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.compose.conftest import REPLICAS

pytestmark = pytest.mark.compose

PRODUCT = "COMPOSE-1"


def stubs(project):
    channel = grpc.insecure_channel(project.public)
    return (
        channel,
        orders_pb2_grpc.OrderServiceStub(channel),
        inventory_pb2_grpc.InventoryServiceStub(channel),
        notifications_pb2_grpc.NotificationServiceStub(channel),
    )


def new_order(email: str) -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        customer_email=email, items=[orders_pb2.OrderItemRequest(product_id=PRODUCT, quantity=1)]
    )


def rest(project, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://{project.public}{path}", method=method, headers={"content-type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=15) as reply:
        return json.loads(reply.read())


def emails(project) -> list[dict]:
    """What the SMTP sink accepted, from its log (one JSON line per email)."""
    lines = project.logs(project.container("mailpit")).splitlines()
    return [entry for entry in map(_json_or_none, lines) if entry and "message_id" in entry]


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def sent_notifications(notifications, email: str) -> list:
    reply = notifications.ListNotifications(
        notifications_pb2.ListNotificationsRequest(recipient=email, page_size=1000), timeout=10
    )
    return list(reply.notifications)


def eventually(check, timeout: float = 60.0):
    """Polls check until it returns something truthy; UNAVAILABLE (a restarted
    service Envoy has not routed to yet) counts as not yet, as for any client."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            found = None
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_orders_by_grpc_and_rest_are_followed_and_emailed(project):
    channel, orders, inventory, notifications = stubs(project)
    with channel:
        inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=PRODUCT, title="Compose product",
                    price=money_pb2.Money(currency_code="EUR", units=3), available=1000,
                )
            ),
            timeout=30,
        )
        by_grpc = orders.CreateOrder(new_order("grpc@example.com"), timeout=30)
        by_rest = rest(project, "POST", "/v1/orders",
                       {"customerEmail": "rest@example.com", "items": [{"productId": PRODUCT, "quantity": 2}]})
        assert (by_rest["total"]["currencyCode"], by_rest["total"]["units"]) == ("EUR", "6")
        assert rest(project, "GET", f"/v1/orders/{by_grpc.order_id}")["customerEmail"] == "grpc@example.com"

        watch = orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=by_grpc.order_id), timeout=60)
        assert next(watch).status == orders_pb2.ORDER_STATUS_PENDING
        orders.ConfirmOrder(orders_pb2.ConfirmOrderRequest(order_id=by_grpc.order_id), timeout=30)
        assert next(watch).status == orders_pb2.ORDER_STATUS_CONFIRMED
        watch.cancel()

        # every notification the service sent reached the SMTP server, Message-ID and all
        sent = eventually(lambda: [n for n in sent_notifications(notifications, "grpc@example.com")
                                   if n.status == notifications_pb2.Notification.STATUS_SENT][1:])
        assert len(sent) == 1, "the confirmation email was not sent"
        received = {e["message_id"] for e in emails(project)}
        assert {n.message_id for n in sent_notifications(notifications, "grpc@example.com")} <= received
        assert eventually(lambda: [e for e in emails(project) if e["to"] == "rest@example.com"])


def test_notifications_down_and_back_loses_nothing(project):
    channel, orders, _, notifications = stubs(project)
    with channel:
        project.podman("stop", "--time", "30", project.container("notifications"))
        placed = [orders.CreateOrder(new_order(f"away-{n}@example.com"), timeout=30) for n in range(5)]
        project.podman("start", project.container("notifications"))
        project.wait_healthy([project.container("notifications")])
        # and Envoy routes to it again (it may have come back on a new address)
        project.wait_routed(REPLICAS)
        assert len(placed) == 5
        for n in range(len(placed)):
            address = f"away-{n}@example.com"
            assert eventually(lambda a=address: [e for e in emails(project) if e["to"] == a]), f"no email for {address}"


def test_two_order_replicas_serve_and_the_event_stream_has_no_gaps(project):
    channel, orders, _, notifications = stubs(project)
    with channel:
        placed = [orders.CreateOrder(new_order("replicas@example.com"), timeout=30) for _ in range(40)]
        served = [
            project.logs(project.container("orders", replica)).count('"method": "/shopmesh.orders.v1.OrderService/CreateOrder"')
            for replica in (1, 2)
        ]
        assert all(count > 0 for count in served), f"CreateOrder calls per replica: {served}"

        # once the last order's event is recorded, every earlier one must be too
        last = placed[-1].order_id
        assert eventually(lambda: notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(order_id=last), timeout=10
        ).notifications), "the last order's event never reached the Notification service"
        reply = notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(page_size=1000), timeout=10)
        sequences = sorted(n.event_sequence for n in reply.notifications)
        # one notification per event, every sequence from 1 up, none twice
        assert len(sequences) >= len(placed)
        assert sequences == list(range(1, len(sequences) + 1))
