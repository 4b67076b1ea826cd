"""The Order service against a real database (SQLite, then PostgreSQL) and a real Inventory service."""

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orders.main import create_app
from orders.storage import OrderEventRow
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import database_url
from tests.helpers.grpc_calls import all_pages, available, details, stock_is
from tests.helpers.in_process import Running, service_channel
from tests.helpers.messages import create, product
from tests.helpers.waiting import eventually


@pytest.fixture
async def stocked(inventory):
    await inventory.stub.CreateProduct(product("A", 10, units=2, nanos=500_000_000))
    await inventory.stub.CreateProduct(product("B", 3, units=10))
    return inventory


async def test_create_takes_prices_from_inventory(orders, stocked):
    order = await orders.stub.CreateOrder(create(A=2, B=1))
    assert order.status == pb.ORDER_STATUS_PENDING
    assert [(i.product_id, i.quantity, i.unit_price.units) for i in order.items] == [("A", 2, 2), ("B", 1, 10)]
    assert (order.total.currency_code, order.total.units, order.total.nanos) == ("EUR", 15, 0)
    assert await available(stocked, "A") == 8
    assert await orders.stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id)) == order


async def test_bad_input_is_invalid_argument_and_writes_nothing(orders: Running, stocked: Running) -> None:
    # each request, and the one field violation it is refused with
    bad = [
        (
            create(email="ann@example.com\r\nBcc: eve@example.com", A=1),
            "customer_email",
            "must not contain line breaks",
        ),
        (create(), "items", "must list at least one item"),
        (create(A=0), "items[0].quantity", "must be positive"),
        (create(A=-1), "items[0].quantity", "must be positive"),
        (
            pb.CreateOrderRequest(
                customer_email="ann@example.com", items=[pb.OrderItemRequest(product_id="A", quantity=1)] * 2
            ),
            "items[1].product_id",
            "A is listed twice",
        ),
    ]
    for request, field, description in bad:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await orders.stub.CreateOrder(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == f"{field}: {description}"
        [bad_request] = details(raised.value, error_details_pb2.BadRequest)
        assert [(v.field, v.description) for v in bad_request.field_violations] == [(field, description)]
    assert not (await orders.stub.ListOrders(pb.ListOrdersRequest())).orders
    assert await available(stocked, "A") == 10


async def test_unknown_product_is_not_found(orders: Running, stocked: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CreateOrder(create(A=1, NOPE=1))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "product not found: NOPE"
    assert await available(stocked, "A") == 10


async def test_oversold_order_is_refused_with_details_and_takes_nothing(orders, stocked):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CreateOrder(create(A=1, B=4))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    violation = details(raised.value, error_details_pb2.PreconditionFailure)[0].violations[0]
    assert (violation.subject, violation.description) == ("products/B", "requested 4, available 3")
    assert (await available(stocked, "A"), await available(stocked, "B")) == (10, 3)
    assert not (await orders.stub.ListOrders(pb.ListOrdersRequest())).orders


async def test_request_id_makes_create_idempotent(orders, stocked):
    first = await orders.stub.CreateOrder(create(request_id="req-1", A=2))
    repeats = await asyncio.gather(*(orders.stub.CreateOrder(create(request_id="req-1", A=2)) for _ in range(10)))
    assert {r.order_id for r in repeats} == {first.order_id}
    assert await available(stocked, "A") == 8
    assert len((await orders.stub.ListOrders(pb.ListOrdersRequest())).orders) == 1


async def test_request_id_reused_for_another_order_is_refused(orders: Running, stocked: Running) -> None:
    await orders.stub.CreateOrder(create(request_id="req-1", A=2))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CreateOrder(create(request_id="req-1", A=3))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert raised.value.details() == (
        "request_id 'req-1' was already used for an order with another customer or other items"
    )
    assert await available(stocked, "A") == 8


async def test_life_cycle_and_illegal_moves(orders, stocked):
    order = await orders.stub.CreateOrder(create(A=1))
    ref = pb.ShipOrderRequest(order_id=order.order_id)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.ShipOrder(ref)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    confirmed = await orders.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id))
    assert confirmed.status == pb.ORDER_STATUS_CONFIRMED
    shipped = await orders.stub.ShipOrder(ref)
    assert shipped.status == pb.ORDER_STATUS_SHIPPED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await available(stocked, "A") == 9


async def test_cancel_releases_the_reservation(orders, stocked):
    order = await orders.stub.CreateOrder(create(A=4, B=3))
    assert await available(stocked, "B") == 0
    cancelled = await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    assert cancelled.status == pb.ORDER_STATUS_CANCELLED
    # Inventory gives the stock back from the order's CANCELLED event
    assert await eventually(lambda: stock_is(stocked, "B", 3))
    assert await available(stocked, "A") == 10
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await available(stocked, "A"), await available(stocked, "B")) == (10, 3)


async def test_unknown_order_is_not_found(orders):
    for call, request in [
        (orders.stub.GetOrder, pb.GetOrderRequest(order_id="nope")),
        (orders.stub.ConfirmOrder, pb.ConfirmOrderRequest(order_id="nope")),
        (orders.stub.CancelOrder, pb.CancelOrderRequest(order_id="nope")),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_by_customer_and_pages_newest_first(orders, stocked):
    placed = []
    for i in range(5):
        placed.append(await orders.stub.CreateOrder(create(email=f"c{i % 2}@example.com", A=1)))
    listed = await all_pages(
        orders.stub.ListOrders,
        lambda token: pb.ListOrdersRequest(customer_email="c0@example.com", page_size=2, page_token=token),
        "orders",
    )
    seen = [o.order_id for o in listed]
    assert seen == [o.order_id for o in reversed(placed) if o.customer_email == "c0@example.com"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        first = await orders.stub.ListOrders(pb.ListOrdersRequest(customer_email="c0@example.com", page_size=1))
        await orders.stub.ListOrders(
            pb.ListOrdersRequest(customer_email="c1@example.com", page_token=first.next_page_token)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_change_writes_one_event_in_sequence(orders, stocked, service_env):
    order = await orders.stub.CreateOrder(create(A=1))
    await orders.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id))
    await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    with pytest.raises(grpc.aio.AioRpcError):
        await orders.stub.ShipOrder(pb.ShipOrderRequest(order_id=order.order_id))
    engine = create_engine(database_url(service_env, "orders"))
    with Session(engine) as session:
        rows = session.scalars(select(OrderEventRow).order_by(OrderEventRow.sequence)).all()
    engine.dispose()
    assert [(r.sequence, r.type, r.previous_status) for r in rows] == [
        (1, "CREATED", None),
        (2, "STATUS_CHANGED", "PENDING"),
        (3, "STATUS_CHANGED", "CONFIRMED"),
    ]
    assert all(r.order_id == order.order_id for r in rows)
    assert '"status": "CANCELLED"' in rows[-1].snapshot


async def test_inventory_unreachable_is_unavailable(service_env: dict[str, str]) -> None:
    app = await create_app({**service_env, "ORDERS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": "127.0.0.1:1"})
    await app.start()
    async with service_channel(service_env, f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await orders_pb2_grpc.OrderServiceStub(channel).CreateOrder(create(A=1), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "inventory is unavailable; try again later"
    await app.stop(0)


def from_edge(email: str, *roles: str) -> tuple[tuple[str, str], ...]:
    """The identity headers Envoy's edge sets after verifying a token."""
    return (("x-shopmesh-edge", "public"), ("x-shopmesh-email", email), ("x-shopmesh-roles", " ".join(roles)))


async def test_a_customer_from_the_edge_sees_only_their_own_orders(orders, stocked):
    ann, bob = from_edge("ann@example.com", "customer"), from_edge("bob@example.com", "customer")
    bobs = await orders.stub.CreateOrder(create(email="", A=1), metadata=bob)
    assert bobs.customer_email == "bob@example.com"
    for call, request in [
        (orders.stub.GetOrder, pb.GetOrderRequest(order_id=bobs.order_id)),
        (orders.stub.CancelOrder, pb.CancelOrderRequest(order_id=bobs.order_id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request, metadata=ann)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == f"order not found: {bobs.order_id}"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.WatchOrder(pb.WatchOrderRequest(order_id=bobs.order_id), metadata=ann).read()
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.ListOrders(pb.ListOrdersRequest(customer_email="bob@example.com"), metadata=ann)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await orders.stub.ListOrders(pb.ListOrdersRequest(), metadata=ann)).orders == []
    # an operator, and another service (no edge mark), see and move it
    operator = from_edge("ops@example.com", "operator")
    assert (await orders.stub.GetOrder(pb.GetOrderRequest(order_id=bobs.order_id), metadata=operator)) == bobs
    assert (
        await orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=bobs.order_id))
    ).status == pb.ORDER_STATUS_CANCELLED
    assert await eventually(lambda: stock_is(stocked, "A", 10))
