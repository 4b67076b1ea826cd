"""Crash a service with SIGKILL in the middle of a stream of orders, restart it on
the same database, and check that nothing a client was told has been lost."""

import asyncio

import grpc
import pytest
from sqlalchemy import create_engine, select

from devmesh import client
from inventory.storage import ReservationLineRow, ReservationRow
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import BACKENDS, database_url
from tests.helpers.ids import unique
from tests.helpers.inventory_rows import reserved_units
from tests.helpers.mesh import start_mesh

INITIAL_STOCK = 10_000
ORDERS = 240  # acknowledged orders to reach, at least 40 of them after the restart
MAX_ATTEMPTS = 2000
AFTER_RESTART = 40
WORKERS = 4


@pytest.fixture(params=BACKENDS)
def crash_mesh(request, tmp_path):
    """A mesh of its own: this test kills its processes."""
    yield from start_mesh(request, tmp_path, request.param)


def reservations(mesh) -> dict[str, tuple[str, int]]:
    engine = create_engine(database_url(mesh.layout.env, "inventory"))
    query = select(ReservationRow.reservation_id, ReservationRow.status, ReservationLineRow.quantity).join(
        ReservationLineRow
    )
    with engine.connect() as connection:
        found = {rid: (status, quantity) for rid, status, quantity in connection.execute(query)}
    engine.dispose()
    return found


@pytest.mark.parametrize("victim", ["inventory", "orders"])
async def test_sigkill_loses_no_acknowledged_order(crash_mesh, victim):
    mesh = crash_mesh
    product_id = unique("D")
    async with client.aio_channel(mesh.layout.public, mesh.token()) as channel:
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        await inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=product_id,
                    title="durable",
                    price={"currency_code": "EUR", "units": 1},
                    available=INITIAL_STOCK,
                )
            ),
            timeout=10,
        )
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        acknowledged: dict[str, int] = {}
        failures: list[grpc.StatusCode] = []
        attempts = iter(range(MAX_ATTEMPTS))
        after_restart = 0
        restarted = asyncio.Event()

        async def worker() -> None:
            nonlocal after_restart
            for i in attempts:
                if len(acknowledged) >= ORDERS and after_restart >= AFTER_RESTART:
                    return
                quantity = 1 + i % 3
                request = pb.CreateOrderRequest(
                    customer_email="crash@example.com",
                    items=[pb.OrderItemRequest(product_id=product_id, quantity=quantity)],
                )
                try:
                    order = await stub.CreateOrder(request, timeout=15)
                except grpc.aio.AioRpcError as error:
                    failures.append(error.code())
                    await asyncio.sleep(0.05)
                    continue
                acknowledged[order.order_id] = quantity
                after_restart += restarted.is_set()

        async def crash() -> None:
            while len(acknowledged) < ORDERS // 4:
                await asyncio.sleep(0.01)
            mesh.kill(victim)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(mesh.start_service, victim)
            restarted.set()

        await asyncio.gather(crash(), *(worker() for _ in range(WORKERS)))

        assert failures, "the crash should have made some calls fail"
        assert set(failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
        assert after_restart >= AFTER_RESTART, "orders should succeed again after the restart"
        for order_id, quantity in acknowledged.items():
            order = await stub.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10)
            assert [(i.product_id, i.quantity) for i in order.items] == [(product_id, quantity)]
        stock = await inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10)

    held = reservations(mesh)
    for order_id, quantity in acknowledged.items():
        assert held[order_id] in (("RESERVED", quantity), ("HELD", quantity))
    # Nothing created or destroyed: what is free plus what is held is what was put in.
    assert stock.available + reserved_units(mesh, [product_id])[product_id] == INITIAL_STOCK
