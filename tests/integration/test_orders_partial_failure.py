"""Orders stays consistent with Inventory when one side fails or callers race."""

import asyncio

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from orders.main import create_app
from orders.storage import OrderEventRow, OrderRow, OrderStore
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import database_url
from tests.helpers.grpc_calls import available, stock_is
from tests.helpers.in_process import service_channel
from tests.helpers.messages import create, product
from tests.helpers.waiting import eventually


def row_counts(env: dict) -> tuple[int, int]:
    engine = create_engine(database_url(env, "orders"))
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (OrderRow, OrderEventRow)
        )
    engine.dispose()
    return counts


async def test_an_order_that_cannot_be_stored_gives_its_stock_back_when_its_reservation_expires(
    orders, inventory, monkeypatch
):
    await inventory.stub.CreateProduct(product("A", 5))

    async def broken_create(self, order, request_id, fingerprint, deadline):
        raise RuntimeError("the orders database refused the write")

    monkeypatch.setattr(OrderStore, "create", broken_create)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.stub.CreateOrder(create(A=3))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "refused the write" not in raised.value.details()  # internals stay in the log
    # held until the reservation expires (1 s here) and Inventory finds no order for it
    assert await available(inventory, "A") == 2
    assert await eventually(lambda: stock_is(inventory, "A", 5))


async def test_an_inventory_error_leaves_no_order_and_no_event(orders, inventory, service_env):
    await inventory.stub.CreateProduct(product("A", 1))
    for request in (create(A=2), create(A=1, NOPE=1)):
        with pytest.raises(grpc.aio.AioRpcError):
            await orders.stub.CreateOrder(request)
    assert row_counts(service_env) == (0, 0)
    assert await available(inventory, "A") == 1


async def test_concurrent_cancels_give_the_stock_back_once(orders, inventory):
    await inventory.stub.CreateProduct(product("A", 5))
    order = await orders.stub.CreateOrder(create(A=4))
    results = await asyncio.gather(
        *(orders.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id)) for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, pb.Order) for r in results) == 1
    assert {r.code() for r in results if not isinstance(r, pb.Order)} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert await eventually(lambda: stock_is(inventory, "A", 5))
    await asyncio.sleep(1)
    assert await available(inventory, "A") == 5  # once


async def test_events_stay_gap_free_with_two_order_processes_on_one_database(orders, inventory, service_env):
    """A second Order service on the same database, as when several run behind Envoy."""
    await inventory.stub.CreateProduct(product("A", 1000))
    other = await create_app({**service_env, "ORDERS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": inventory.address})
    await other.start()
    try:
        async with service_channel(service_env, f"127.0.0.1:{other.port}") as channel:
            stubs = [orders.stub, orders_pb2_grpc.OrderServiceStub(channel)]
            placed = await asyncio.gather(*(stubs[i % 2].CreateOrder(create(A=1)) for i in range(40)))
            await asyncio.gather(
                *(stubs[i % 2].ConfirmOrder(pb.ConfirmOrderRequest(order_id=o.order_id)) for i, o in enumerate(placed))
            )
            await asyncio.gather(
                *(
                    stubs[i % 2].CancelOrder(pb.CancelOrderRequest(order_id=o.order_id))
                    for i, o in enumerate(placed[:10])
                )
            )
    finally:
        await other.stop(0)
    engine = create_engine(database_url(service_env, "orders"))
    with engine.connect() as connection:
        events = connection.execute(
            select(OrderEventRow.sequence, OrderEventRow.order_id, OrderEventRow.type).order_by(OrderEventRow.sequence)
        ).all()
    engine.dispose()
    assert [e.sequence for e in events] == list(range(1, 91))
    for order in placed[:10]:
        mine = [e.type for e in events if e.order_id == order.order_id]
        assert mine == ["CREATED", "STATUS_CHANGED", "STATUS_CHANGED"]
