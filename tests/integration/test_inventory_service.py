"""The Inventory service against a real database (SQLite, then PostgreSQL), through its gRPC API."""

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2

from shopmesh.inventory.v1 import inventory_pb2 as pb
from tests.helpers.grpc_calls import all_pages, available, details
from tests.helpers.in_process import Running
from tests.helpers.messages import product


def reserve(reservation_id: str, **items: int) -> pb.ReserveStockRequest:
    return pb.ReserveStockRequest(
        reservation_id=reservation_id,
        items=[pb.ReservationItem(product_id=p.replace("_", "-"), quantity=q) for p, q in items.items()],
    )


async def test_create_get_and_duplicate(inventory):
    created = await inventory.stub.CreateProduct(product("W-1", 10, units=9, nanos=990_000_000))
    assert created.price.units == 9 and created.price.nanos == 990_000_000
    assert created.create_time.seconds > 0
    fetched = await inventory.stub.GetProduct(pb.GetProductRequest(product_id="W-1"))
    assert fetched == created
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.CreateProduct(product("W-1", 1))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(raised.value, error_details_pb2.ResourceInfo)[0].resource_name == "W-1"


async def test_unknown_product_is_not_found(inventory):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.GetProduct(pb.GetProductRequest(product_id="NOPE"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_product_is_invalid_argument_with_field_violations(inventory):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.CreateProduct(pb.CreateProductRequest(product=pb.Product(product_id="", title="x")))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details(raised.value, error_details_pb2.BadRequest)[0].field_violations
    # one error names them all, the missing price among the rest
    assert [(v.field, v.description) for v in violations] == [
        ("product.product_id", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
        ("product.price", "is required"),
    ]
    listing = await inventory.stub.ListProducts(pb.ListProductsRequest())
    assert list(listing.products) == []


async def test_list_pages_through_every_product_once(inventory):
    for i in range(7):
        await inventory.stub.CreateProduct(product(f"P-{i}", 1))
    products = await all_pages(
        inventory.stub.ListProducts, lambda token: pb.ListProductsRequest(page_size=3, page_token=token), "products"
    )
    seen = [p.product_id for p in products]
    assert seen == [f"P-{i}" for i in range(7)]


async def test_restock_and_check_stock(inventory):
    await inventory.stub.CreateProduct(product("W-1", 0))
    stock = await inventory.stub.CheckStock(pb.CheckStockRequest(product_id="W-1"))
    assert (stock.available, stock.in_stock) == (0, False)
    restocked = await inventory.stub.RestockProduct(pb.RestockProductRequest(product_id="W-1", quantity=4))
    assert restocked.available == 4
    for quantity in (0, -1):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await inventory.stub.RestockProduct(pb.RestockProductRequest(product_id="W-1", quantity=quantity))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await available(inventory, "W-1") == 4


async def test_reserve_returns_prices_and_is_idempotent(inventory):
    await inventory.stub.CreateProduct(product("A", 10, units=2, nanos=500_000_000))
    await inventory.stub.CreateProduct(product("B", 10, units=1))
    first = await inventory.stub.ReserveStock(reserve("r-1", A=3, B=1))
    assert first.status == pb.Reservation.STATUS_RESERVED
    assert [(i.product_id, i.quantity, i.unit_price.units, i.unit_price.nanos) for i in first.items] == [
        ("A", 3, 2, 500_000_000),
        ("B", 1, 1, 0),
    ]
    again = await inventory.stub.ReserveStock(reserve("r-1", A=3, B=1))
    # the same reservation, waiting for its order anew from the repeat on
    assert again.expire_time.ToDatetime() >= first.expire_time.ToDatetime()
    again.ClearField("expire_time")
    first.ClearField("expire_time")
    assert again == first
    assert await available(inventory, "A") == 7
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.ReserveStock(reserve("r-1", A=4, B=1))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_concurrent_repeats_take_stock_once(inventory):
    await inventory.stub.CreateProduct(product("A", 10))
    results = await asyncio.gather(*(inventory.stub.ReserveStock(reserve("r-1", A=2)) for _ in range(10)))
    for result in results:
        result.ClearField("expire_time")  # each repeat renews the wait for the order
    assert len({r.SerializeToString() for r in results}) == 1
    assert await available(inventory, "A") == 8


async def test_shortage_names_every_short_product_and_takes_nothing(inventory):
    await inventory.stub.CreateProduct(product("A", 5))
    await inventory.stub.CreateProduct(product("B", 1))
    await inventory.stub.CreateProduct(product("C", 0))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.ReserveStock(reserve("r-1", A=5, B=2, C=1))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    violations = details(raised.value, error_details_pb2.PreconditionFailure)[0].violations
    assert [(v.type, v.subject) for v in violations] == [("STOCK", "products/B"), ("STOCK", "products/C")]
    assert [await available(inventory, p) for p in "ABC"] == [5, 1, 0]


async def test_unknown_products_are_not_found_and_take_nothing(inventory: Running) -> None:
    await inventory.stub.CreateProduct(product("A", 5))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.ReserveStock(reserve("r-1", A=1, X=1, Y=1))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "product not found: X, Y"
    assert await available(inventory, "A") == 5


async def test_release_puts_stock_back_once(inventory):
    await inventory.stub.CreateProduct(product("A", 5))
    await inventory.stub.ReserveStock(reserve("r-1", A=3))
    for _ in range(2):
        released = await inventory.stub.ReleaseStock(pb.ReleaseStockRequest(reservation_id="r-1"))
        assert released.status == pb.Reservation.STATUS_RELEASED
    assert await available(inventory, "A") == 5
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.ReserveStock(reserve("r-1", A=3))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await available(inventory, "A") == 5


async def test_release_before_reserve_blocks_a_late_reserve(inventory):
    await inventory.stub.CreateProduct(product("A", 5))
    released = await inventory.stub.ReleaseStock(pb.ReleaseStockRequest(reservation_id="late"))
    assert released.status == pb.Reservation.STATUS_RELEASED and not released.items
    with pytest.raises(grpc.aio.AioRpcError):
        await inventory.stub.ReserveStock(reserve("late", A=1))
    assert await available(inventory, "A") == 5


async def test_concurrent_reservations_never_oversell(inventory):
    await inventory.stub.CreateProduct(product("A", 20))
    outcomes = await asyncio.gather(
        *(inventory.stub.ReserveStock(reserve(f"r-{i}", A=1)) for i in range(60)), return_exceptions=True
    )
    succeeded = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(succeeded) == 20 and len(refused) == 40
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert await available(inventory, "A") == 0


async def test_oversized_input_is_refused_and_the_service_lives_on(inventory: Running) -> None:
    long_title = product("W-1", 1)
    long_title.product.title = "x" * 100_000
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.CreateProduct(long_title)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    huge = product("W-1", 1)
    huge.product.title = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.CreateProduct(huge)
    # Past gRPC's 4 MiB message limit the transport itself refuses it.
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await inventory.stub.CreateProduct(product("W-1", 1))
    many = reserve("r-1", **{f"P_{i}": 1 for i in range(101)})
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inventory.stub.ReserveStock(many)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "items: must list at most 100 items"
