"""Generated stubs through Envoy's public and mesh listeners."""

import concurrent.futures

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.ids import unique
from tests.helpers.waiting import settles


def order_request(product_id: str, quantity: int, request_id: str = "", email: str = "ann@example.com"):
    return pb.CreateOrderRequest(
        customer_email=email,
        items=[pb.OrderItemRequest(product_id=product_id, quantity=quantity)],
        request_id=request_id,
    )


def stock(public, product_id: str) -> int:
    return public.inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10).available


def test_order_life_cycle(public, new_product):
    product_id = new_product(10, units=3, nanos=250_000_000)
    order = public.orders.CreateOrder(order_request(product_id, 4), timeout=10)
    assert order.status == pb.ORDER_STATUS_PENDING
    assert (order.total.currency_code, order.total.units, order.total.nanos) == ("EUR", 13, 0)
    assert stock(public, product_id) == 6
    assert public.orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), timeout=10) == order
    confirmed = public.orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id), timeout=10)
    assert confirmed.status == pb.ORDER_STATUS_CONFIRMED
    shipped = public.orders.ShipOrder(pb.ShipOrderRequest(order_id=order.order_id), timeout=10)
    assert shipped.status == pb.ORDER_STATUS_SHIPPED
    with pytest.raises(grpc.RpcError) as raised:
        public.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), timeout=10)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_releases_stock_through_the_mesh(public, new_product):
    product_id = new_product(5)
    order = public.orders.CreateOrder(order_request(product_id, 5), timeout=10)
    assert stock(public, product_id) == 0
    public.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), timeout=10)
    # Inventory follows the order events through the mesh listener and gives the stock back
    assert settles(lambda: stock(public, product_id) == 5)


def test_oversold_order_is_refused_with_details_and_takes_no_stock(public, new_product):
    plenty, scarce = new_product(100), new_product(2)
    request = pb.CreateOrderRequest(
        customer_email="ann@example.com",
        items=[pb.OrderItemRequest(product_id=plenty, quantity=1), pb.OrderItemRequest(product_id=scarce, quantity=3)],
    )
    with pytest.raises(grpc.RpcError) as raised:
        public.orders.CreateOrder(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    failure = error_details_pb2.PreconditionFailure()
    assert any(d.Unpack(failure) for d in rpc_status.from_call(raised.value).details)
    assert [(v.subject, v.description) for v in failure.violations] == [
        (f"products/{scarce}", "requested 3, available 2")
    ]
    assert (stock(public, plenty), stock(public, scarce)) == (100, 2)


def test_repeated_request_id_creates_one_order(public, new_product):
    product_id = new_product(10)
    request_id = unique("req")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        orders = list(
            pool.map(
                lambda _: public.orders.CreateOrder(order_request(product_id, 2, request_id), timeout=10), range(8)
            )
        )
    assert len({o.order_id for o in orders}) == 1
    assert stock(public, product_id) == 8


def test_list_orders_of_one_customer(public, new_product):
    product_id = new_product(10)
    email = f"{unique('c').lower()}@example.com"
    placed = [public.orders.CreateOrder(order_request(product_id, 1, email=email), timeout=10) for _ in range(3)]
    listed = public.orders.ListOrders(pb.ListOrdersRequest(customer_email=email), timeout=10)
    assert [o.order_id for o in listed.orders] == [o.order_id for o in reversed(placed)]


def test_bad_input_gets_invalid_argument(public):
    with pytest.raises(grpc.RpcError) as raised:
        public.orders.CreateOrder(order_request("X", 1, email="ann@example.com\r\nBcc: eve@example.com"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "call, request_message",
    [
        (
            "ReserveStock",
            inventory_pb2.ReserveStockRequest(
                reservation_id="x", items=[inventory_pb2.ReservationItem(product_id="A", quantity=1)]
            ),
        ),
        ("ReleaseStock", inventory_pb2.ReleaseStockRequest(reservation_id="x")),
    ],
)
def test_internal_inventory_rpcs_are_not_on_the_public_listener(public, call, request_message):
    with pytest.raises(grpc.RpcError) as raised:
        getattr(public.inventory, call)(request_message, timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_stream_order_events_is_not_on_the_public_listener(public):
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(public.orders.StreamOrderEvents(pb.StreamOrderEventsRequest(), timeout=10)))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Envoy refused it (no route): the Order service, which does serve the
    # method on the mesh listener, never saw the call.
    assert "StreamOrderEvents" not in raised.value.details()


def test_internal_rpcs_work_on_the_mesh_listener(internal, public, new_product):
    product_id = new_product(3)
    reservation_id = unique("res")
    request = inventory_pb2.ReserveStockRequest(
        reservation_id=reservation_id, items=[inventory_pb2.ReservationItem(product_id=product_id, quantity=2)]
    )
    reserved = internal.inventory.ReserveStock(request, timeout=10)
    assert reserved.items[0].unit_price.units == 5
    assert stock(public, product_id) == 1
    internal.inventory.ReleaseStock(inventory_pb2.ReleaseStockRequest(reservation_id=reservation_id), timeout=10)
    assert stock(public, product_id) == 3
