"""`make kube-test`: deploy/kubernetes's dev overlay run for real by podman kube play, from
the locally built image, with two Order replicas under the hardened securityContext; an
order placed and watched through Envoy, its email at the mail catcher."""

import json
import time

import grpc
import pytest
from google.type import money_pb2

from devmesh import credentials, envoy_config
from devmesh import token as tokens
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.helpers.kube_manifests import SERVICES
from tests.helpers.podman import sink_emails

pytestmark = pytest.mark.kube_play

PRODUCT = "KUBE-1"
OPERATOR = "ops@example.com"
# Run inside each container: who it runs as, and what it may do.
CONFINEMENT = """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
try:
    open("/written-to-root", "w").close()
    root_writable = True
except OSError:
    root_writable = False
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "root_writable": root_writable,
                  "capabilities": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                  "seccomp": status["Seccomp"].strip()}))
"""


def token(played, email: str, roles: str) -> grpc.CallCredentials:
    """A token signed with the key whose JWKS the cluster's Envoy was given (kube_secrets)."""
    signing_key = tokens.load_signing_key({"SHOPMESH_DATA_DIR": str(played.data_dir)})
    return grpc.access_token_call_credentials(
        tokens.mint(signing_key, envoy_config.params_from_env({}), email, (roles,))
    )


def channel(played) -> grpc.Channel:
    ca = credentials.Credentials(played.data_dir / "credentials").ca.read_bytes()
    return grpc.secure_channel(played.public, grpc.ssl_channel_credentials(ca))


def emails(played) -> list[dict]:
    return sink_emails(played.logs(played.mail))


def test_every_container_runs_as_the_manifests_confine_it(played):
    for containers in played.containers_of.values():
        for container in containers:
            seen = json.loads(played.exec_python(container, CONFINEMENT))
            assert seen == {
                "uid": 10001,
                "gid": 10001,
                "root_writable": False,
                "capabilities": "0000000000000000",
                "no_new_privs": "1",
                "seccomp": "2",
            }, container
    assert len(played.pods["orders"]) == 2


def test_an_order_placed_and_watched_through_envoy_is_emailed(played):
    with channel(played) as public:
        orders = orders_pb2_grpc.OrderServiceStub(public)
        inventory = inventory_pb2_grpc.InventoryServiceStub(public)
        notifications = notifications_pb2_grpc.NotificationServiceStub(public)
        operator = token(played, OPERATOR, "operator")
        inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=PRODUCT,
                    title="Kubernetes product",
                    price=money_pb2.Money(currency_code="EUR", units=4),
                    available=100,
                )
            ),
            timeout=30,
            credentials=operator,
        )
        ann = token(played, "ann@example.com", "customer")
        order = orders.CreateOrder(
            orders_pb2.CreateOrderRequest(
                customer_email="ann@example.com", items=[orders_pb2.OrderItemRequest(product_id=PRODUCT, quantity=2)]
            ),
            timeout=30,
            credentials=ann,
        )
        assert (order.total.currency_code, order.total.units) == ("EUR", 8)
        watch = orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order.order_id), timeout=60, credentials=ann)
        assert next(watch).status == orders_pb2.ORDER_STATUS_PENDING
        orders.ConfirmOrder(orders_pb2.ConfirmOrderRequest(order_id=order.order_id), timeout=30, credentials=operator)
        assert next(watch).status == orders_pb2.ORDER_STATUS_CONFIRMED
        watch.cancel()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = notifications.ListNotifications(
                notifications_pb2.ListNotificationsRequest(recipient="ann@example.com", page_size=100),
                timeout=10,
                credentials=operator,
            ).notifications
            if len([n for n in sent if n.status == notifications_pb2.Notification.STATUS_SENT]) >= 2:
                break
            time.sleep(1)
        ids = {n.message_id for n in sent if n.status == notifications_pb2.Notification.STATUS_SENT}
        assert len(ids) >= 2, "the order's emails were not sent"
        received = {e["message_id"] for e in emails(played) if e["to"] == "ann@example.com"}
        assert ids <= received


def test_both_order_replicas_serve_calls(played):
    with channel(played) as public:
        orders = orders_pb2_grpc.OrderServiceStub(public)
        operator = token(played, OPERATOR, "operator")
        for _ in range(20):
            orders.ListOrders(orders_pb2.ListOrdersRequest(page_size=1), timeout=10, credentials=operator)
    (envoy,) = played.containers_of["envoy"]
    stats = played.exec_python(
        envoy, "from devmesh.launcher import admin_get; print(admin_get('127.0.0.1:9901', '/clusters'))"
    )
    # one line per host of the cluster: orders::10.89.0.5:50051::rq_success::12
    served = [
        int(line.rpartition("::")[2])
        for line in stats.splitlines()
        if line.startswith("orders::") and "::rq_success::" in line
    ]
    assert len(served) == 2 and all(count > 0 for count in served), stats


def test_a_service_port_refuses_a_caller_without_a_mesh_certificate(played):
    (envoy,) = played.containers_of["envoy"]
    for name in SERVICES:
        _, port = envoy_config.split_address(played.rendered.env(name)[f"{name.upper()}_LISTEN"])
        assert played.health(envoy, f"{name}:{port}") == "UNAVAILABLE", name
