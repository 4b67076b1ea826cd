"""Correct under concurrent use: many clients at once through Envoy, on both databases."""

import asyncio
import random

import grpc
import pytest

from devmesh import client
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.ids import unique
from tests.helpers.inventory_rows import reservation_count, reserved_units

CLIENT_CONNECTIONS = 8


async def create_concurrently(mesh, requests: list[pb.CreateOrderRequest]) -> list:
    """Sends every request at once over several connections to the public listener, as an
    operator; returns orders and errors."""
    token = mesh.token()
    channels = [client.aio_channel(mesh.layout.public, token) for _ in range(CLIENT_CONNECTIONS)]
    stubs = [orders_pb2_grpc.OrderServiceStub(channel) for channel in channels]

    async def one(i: int, request):
        try:
            return await stubs[i % len(stubs)].CreateOrder(request, timeout=60)
        except grpc.aio.AioRpcError as error:
            return error

    try:
        return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


def stock(public, product_id: str) -> int:
    return public.inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10).available


def order_for(items: dict[str, int], request_id: str = "") -> pb.CreateOrderRequest:
    return pb.CreateOrderRequest(
        customer_email="load@example.com",
        items=[pb.OrderItemRequest(product_id=p, quantity=q) for p, q in items.items()],
        request_id=request_id,
    )


async def test_no_oversell_under_200_concurrent_orders(mesh, public, new_product):
    product_id = new_product(50)
    results = await create_concurrently(mesh, [order_for({product_id: 1}) for _ in range(200)])
    placed = [r for r in results if isinstance(r, pb.Order)]
    refused = [r for r in results if not isinstance(r, pb.Order)]
    assert len(placed) == 50
    assert len(refused) == 150
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert stock(public, product_id) == 0
    assert reserved_units(mesh, [product_id]) == {product_id: 50}


async def test_overlapping_multi_item_orders_are_all_or_nothing(mesh, public, new_product):
    products = [new_product(40) for _ in range(4)]
    rng = random.Random(7)
    requests = []
    for _ in range(160):
        chosen = rng.sample(products, rng.randint(1, 3))  # shuffled: lock order is the server's business
        requests.append(order_for({p: rng.randint(1, 3) for p in chosen}))
    results = await create_concurrently(mesh, requests)
    placed = [r for r in results if isinstance(r, pb.Order)]
    refused = [r for r in results if not isinstance(r, pb.Order)]
    assert placed and refused, "the load should both place and refuse orders"
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    ordered = {p: sum(i.quantity for o in placed for i in o.items if i.product_id == p) for p in products}
    assert {p: 40 - stock(public, p) for p in products} == ordered
    assert reserved_units(mesh, products) == ordered


async def test_one_request_id_sent_20_times_at_once_is_one_order(mesh, public, new_product):
    product_id = new_product(10)
    request_id = unique("req")
    results = await create_concurrently(mesh, [order_for({product_id: 3}, request_id)] * 20)
    assert all(isinstance(r, pb.Order) for r in results), [r for r in results if not isinstance(r, pb.Order)]
    assert len({r.order_id for r in results}) == 1
    assert reservation_count(mesh, results[0].order_id) == 1
    assert stock(public, product_id) == 7
    listed = public.orders.ListOrders(
        pb.ListOrdersRequest(customer_email="load@example.com", page_size=1000), timeout=10
    )
    assert sum(o.order_id == results[0].order_id for o in listed.orders) == 1


async def test_a_repeated_reservation_takes_stock_once(mesh, public, new_product):
    """What an Envoy retry of ReserveStock does: the same reservation twice, at once."""
    product_id = new_product(10)
    request = inventory_pb2.ReserveStockRequest(
        reservation_id=unique("res"), items=[inventory_pb2.ReservationItem(product_id=product_id, quantity=4)]
    )
    mesh_listener = mesh.layout.mesh
    async with (
        mesh.layout.aio_channel(mesh_listener, "envoy", "orders") as first,
        mesh.layout.aio_channel(mesh_listener, "envoy", "orders") as second,
    ):
        replies = await asyncio.gather(
            inventory_pb2_grpc.InventoryServiceStub(first).ReserveStock(request, timeout=10),
            inventory_pb2_grpc.InventoryServiceStub(second).ReserveStock(request, timeout=10),
        )
    for reply in replies:
        reply.ClearField("expire_time")  # a repeat renews the wait for the order
    assert replies[0] == replies[1]
    assert stock(public, product_id) == 6


def test_request_id_reused_with_other_items_is_refused(public, new_product):
    quantity = 1
    product_id = new_product(10)
    request_id = unique("req")
    public.orders.CreateOrder(order_for({product_id: quantity}, request_id), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        public.orders.CreateOrder(order_for({product_id: quantity + 1}, request_id), timeout=10)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already used" in raised.value.details()
    assert stock(public, product_id) == 10 - quantity
