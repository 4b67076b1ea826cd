"""Customers see only their own orders, on both databases: Ann cannot see, watch, cancel
or list Bob's orders, an operator can, and no header a client sends changes whose
order it is."""

import grpc
import pytest

from devmesh import client
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.mesh import stubs_for

ANN, BOB = "ann@example.com", "bob@example.com"
FORGED = (("x-shopmesh-email", BOB), ("x-shopmesh-roles", "operator"), ("x-shopmesh-edge", "mesh"))


@pytest.fixture(scope="module")
def as_customer(mesh):
    """Stubs for a customer: as_customer(email)."""
    opened = []

    def stubs(email: str):
        channel = client.channel(mesh.layout.public, mesh.token(email, ["customer"]))
        opened.append(channel)
        return stubs_for(channel)

    yield stubs
    for channel in opened:
        channel.close()


def order_of(stubs, product_id: str, **extra) -> pb.Order:
    return stubs.orders.CreateOrder(
        pb.CreateOrderRequest(items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]), timeout=10, **extra
    )


def refusal(call, *args, **kwargs) -> grpc.RpcError:
    """The error a call ends with (for a stream: before its first message)."""
    with pytest.raises(grpc.RpcError) as raised:
        result = call(*args, timeout=10, **kwargs)
        if hasattr(result, "__next__"):
            next(result)
    return raised.value


def test_ann_cannot_see_watch_cancel_or_list_bobs_orders(as_customer, public, new_product):
    ann, bob = as_customer(ANN), as_customer(BOB)
    product_id = new_product(10)
    bobs = order_of(bob, product_id)
    assert bobs.customer_email == BOB

    missing = refusal(ann.orders.GetOrder, pb.GetOrderRequest(order_id="no-such-order"))
    for call, request in [
        (ann.orders.GetOrder, pb.GetOrderRequest(order_id=bobs.order_id)),
        (ann.orders.WatchOrder, pb.WatchOrderRequest(order_id=bobs.order_id)),
        (ann.orders.CancelOrder, pb.CancelOrderRequest(order_id=bobs.order_id)),
    ]:
        refused = refusal(call, request)
        # exactly what a missing order gives, but for the id: nothing tells that it exists
        assert refused.code() == missing.code() == grpc.StatusCode.NOT_FOUND
        assert refused.details() == missing.details().replace("no-such-order", bobs.order_id)
    assert (
        refusal(ann.orders.ListOrders, pb.ListOrdersRequest(customer_email=BOB)).code()
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        refusal(
            ann.orders.CreateOrder,
            pb.CreateOrderRequest(customer_email=BOB, items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]),
        ).code()
        == grpc.StatusCode.PERMISSION_DENIED
    )

    # Ann's own list holds her orders only, whatever she asks for
    anns = order_of(ann, product_id)
    for asked in ("", ANN, ANN.upper()):
        listed = ann.orders.ListOrders(pb.ListOrdersRequest(customer_email=asked, page_size=1000), timeout=10).orders
        assert {o.customer_email for o in listed} == {ANN} and anns.order_id in {o.order_id for o in listed}

    # Bob's order is untouched; an operator sees and moves anyone's
    assert (
        public.orders.GetOrder(pb.GetOrderRequest(order_id=bobs.order_id), timeout=10).status == pb.ORDER_STATUS_PENDING
    )
    everyone = public.orders.ListOrders(pb.ListOrdersRequest(page_size=1000), timeout=10).orders
    assert {ANN, BOB} <= {o.customer_email for o in everyone}
    assert {
        o.customer_email for o in public.orders.ListOrders(pb.ListOrdersRequest(customer_email=BOB), timeout=10).orders
    } == {BOB}
    assert (
        public.orders.CancelOrder(pb.CancelOrderRequest(order_id=bobs.order_id), timeout=10).status
        == pb.ORDER_STATUS_CANCELLED
    )


def test_a_customer_watches_and_cancels_their_own_order(as_customer, new_product):
    ann = as_customer(ANN)
    order = order_of(ann, new_product(1))
    stream = ann.orders.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), timeout=30)
    assert next(stream).status == pb.ORDER_STATUS_PENDING
    assert (
        ann.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), timeout=10).status
        == pb.ORDER_STATUS_CANCELLED
    )
    assert [m.status for m in stream] == [pb.ORDER_STATUS_CANCELLED]


def test_forged_identity_headers_change_nothing(as_customer, public, new_product):
    """Ann sends headers claiming to be Bob, an operator, a service: she stays Ann."""
    ann = as_customer(ANN)
    product_id = new_product(5)
    placed = order_of(ann, product_id, metadata=FORGED)
    assert placed.customer_email == ANN
    bobs = order_of(as_customer(BOB), product_id)
    assert (
        refusal(ann.orders.GetOrder, pb.GetOrderRequest(order_id=bobs.order_id), metadata=FORGED).code()
        == grpc.StatusCode.NOT_FOUND
    )
    listed = ann.orders.ListOrders(pb.ListOrdersRequest(), timeout=10, metadata=FORGED).orders
    assert {o.customer_email for o in listed} == {ANN}
    assert (
        refusal(ann.orders.ShipOrder, pb.ShipOrderRequest(order_id=placed.order_id), metadata=FORGED).code()
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert public.orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), timeout=10).customer_email == ANN


def test_a_request_id_reused_by_another_customer_names_no_order(as_customer, new_product):
    product_id = new_product(5)
    request = pb.CreateOrderRequest(
        items=[pb.OrderItemRequest(product_id=product_id, quantity=1)], request_id="shared-id-" + product_id
    )
    anns = as_customer(ANN).orders.CreateOrder(request, timeout=10)
    refused = refusal(as_customer(BOB).orders.CreateOrder, request)
    assert refused.code() == grpc.StatusCode.ALREADY_EXISTS
    assert anns.order_id not in refused.details()
