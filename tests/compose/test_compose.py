"""`make compose-test`: the real compose.yaml, run with podman on this machine,
used as a client would use it through Envoy's published port: TLS with the
development CA taken out of the container, and tokens minted inside it."""

import http.client
import json
import ssl
import time
import urllib.error
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
OPERATOR = "ops@example.com"


def stubs(project):
    """Stubs on one TLS channel to the published port; each call brings its own token."""
    channel = grpc.secure_channel(project.public, grpc.ssl_channel_credentials(project.ca.read_bytes()))
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


def customer(project, email: str) -> grpc.CallCredentials:
    return grpc.access_token_call_credentials(project.token(email, "customer"))


def operator(project) -> grpc.CallCredentials:
    return grpc.access_token_call_credentials(project.token(OPERATOR, "operator"))


def rest(project, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    """One HTTPS request to the published port, trusting only the development CA."""
    auth = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"https://{project.public}{path}", method=method, headers={"content-type": "application/json", **auth},
        data=None if body is None else json.dumps(body).encode(),
    )
    tls = ssl.create_default_context(cafile=str(project.ca))
    with urllib.request.urlopen(request, timeout=15, context=tls) as reply:
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


def sent_notifications(project, notifications, email: str) -> list:
    reply = notifications.ListNotifications(
        notifications_pb2.ListNotificationsRequest(recipient=email, page_size=1000), timeout=10,
        credentials=operator(project),
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
            timeout=30, credentials=operator(project),
        )
        by_grpc = orders.CreateOrder(new_order("grpc@example.com"), timeout=30,
                                     credentials=customer(project, "grpc@example.com"))
        by_rest = rest(project, "POST", "/v1/orders",
                       {"customerEmail": "rest@example.com", "items": [{"productId": PRODUCT, "quantity": 2}]},
                       token=project.token("rest@example.com"))
        assert (by_rest["total"]["currencyCode"], by_rest["total"]["units"]) == ("EUR", "6")
        assert rest(project, "GET", f"/v1/orders/{by_grpc.order_id}",
                    token=project.token("grpc@example.com"))["customerEmail"] == "grpc@example.com"

        watch = orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=by_grpc.order_id), timeout=60,
                                  credentials=customer(project, "grpc@example.com"))
        assert next(watch).status == orders_pb2.ORDER_STATUS_PENDING
        orders.ConfirmOrder(orders_pb2.ConfirmOrderRequest(order_id=by_grpc.order_id), timeout=30,
                            credentials=operator(project))
        assert next(watch).status == orders_pb2.ORDER_STATUS_CONFIRMED
        watch.cancel()

        # every notification the service sent reached the SMTP server, Message-ID and all
        sent = eventually(lambda: [n for n in sent_notifications(project, notifications, "grpc@example.com")
                                   if n.status == notifications_pb2.Notification.STATUS_SENT][1:])
        assert len(sent) == 1, "the confirmation email was not sent"
        received = {e["message_id"] for e in emails(project)}
        assert {n.message_id for n in sent_notifications(project, notifications, "grpc@example.com")} <= received
        assert eventually(lambda: [e for e in emails(project) if e["to"] == "rest@example.com"])


def test_notifications_down_and_back_loses_nothing(project):
    channel, orders, _, notifications = stubs(project)
    with channel:
        customers = [f"away-{n}@example.com" for n in range(5)]
        tokens = {email: customer(project, email) for email in customers}
        project.podman("stop", "--time", "30", project.container("notifications"))
        placed = [orders.CreateOrder(new_order(email), timeout=30, credentials=tokens[email]) for email in customers]
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
        as_customer = customer(project, "replicas@example.com")
        placed = [orders.CreateOrder(new_order("replicas@example.com"), timeout=30, credentials=as_customer)
                  for _ in range(40)]
        served = [
            project.logs(project.container("orders", replica)).count('"method": "/shopmesh.orders.v1.OrderService/CreateOrder"')
            for replica in (1, 2)
        ]
        assert all(count > 0 for count in served), f"CreateOrder calls per replica: {served}"

        # once the last order's event is recorded, every earlier one must be too
        last = placed[-1].order_id
        assert eventually(lambda: notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(order_id=last), timeout=10, credentials=operator(project)
        ).notifications), "the last order's event never reached the Notification service"
        reply = notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(page_size=1000), timeout=10,
                                                credentials=operator(project))
        sequences = sorted(n.event_sequence for n in reply.notifications)
        # one notification per event, every sequence from 1 up, none twice
        assert len(sequences) >= len(placed)
        assert sequences == list(range(1, len(sequences) + 1))


def test_orders_need_a_token_and_the_catalogue_does_not(project):
    channel, orders, inventory, _ = stubs(project)
    with channel:
        # anyone may browse
        inventory.ListProducts(inventory_pb2.ListProductsRequest(), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            orders.CreateOrder(new_order("anon@example.com"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            inventory.CreateProduct(
                inventory_pb2.CreateProductRequest(product=inventory_pb2.Product(
                    product_id="COMPOSE-NOT-MINE", title="Not mine",
                    price=money_pb2.Money(currency_code="EUR", units=1), available=1,
                )),
                timeout=30, credentials=customer(project, "anon@example.com"),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(urllib.error.HTTPError) as refused_rest:
        rest(project, "POST", "/v1/orders",
             {"customerEmail": "anon@example.com", "items": [{"productId": PRODUCT, "quantity": 1}]})
    assert refused_rest.value.code == 401
    assert json.loads(refused_rest.value.read())["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_the_published_port_speaks_only_tls(project):
    channel, _, inventory, _ = stubs(project)
    with channel:
        inventory.ListProducts(inventory_pb2.ListProductsRequest(), timeout=30)
    with grpc.insecure_channel(project.public) as plaintext:
        with pytest.raises(grpc.RpcError) as refused:
            inventory_pb2_grpc.InventoryServiceStub(plaintext).ListProducts(
                inventory_pb2.ListProductsRequest(), timeout=30
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises((OSError, http.client.HTTPException)):
        with urllib.request.urlopen(f"http://{project.public}/v1/products", timeout=15) as reply:
            reply.read()
