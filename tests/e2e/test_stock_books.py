"""Stock books that balance across crashes, cancelled calls and replicas, reproduced from
outside on both databases: for every product, available + held + awaiting an order =
received - shipped, and `python -m inventory.reconcile` finds no difference once the
mesh is quiet.

Reservations wait 2 s for their order here (five minutes by default)."""

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time

import grpc
import psycopg
import pytest
from sqlalchemy import create_engine, text

from devmesh import client
from devmesh.launcher import ROOT
from devmesh.ports import free_ports
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import BACKENDS, database_url
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh, stubs_for
from tests.helpers.waiting import settles

# Long enough that a stranded reservation is still held while a killed Order service is
# restarted and routed to again on a loaded machine (it is given back after TTL + grace,
# grace = min(5 s, TTL)), short enough that the tests see it expire.
TTL_SECONDS = 4
CRASHING_PRODUCT = unique("CRASH")


@pytest.fixture(scope="module", params=BACKENDS)
def books_mesh(request, tmp_path_factory):
    env = {
        "INVENTORY_RESERVATION_TTL_SECONDS": str(TTL_SECONDS),
        "SHOPMESH_FAULT_CRASH_AFTER_RESERVE": CRASHING_PRODUCT,
    }
    yield from start_mesh(request, tmp_path_factory.mktemp(f"books-{request.param}"), request.param, env)


@pytest.fixture(scope="module")
def operator(books_mesh):
    with client.channel(books_mesh.layout.public, books_mesh.token()) as channel:
        yield stubs_for(channel)


@pytest.fixture(scope="module")
def customer(books_mesh):
    with client.channel(books_mesh.layout.public, books_mesh.token("books@example.com", ["customer"])) as channel:
        yield stubs_for(channel)


def product(stubs, available: int, product_id: str | None = None) -> str:
    product_id = product_id or unique("B")
    stubs.inventory.CreateProduct(
        inventory_pb2.CreateProductRequest(
            product={
                "product_id": product_id,
                "title": "booked",
                "available": available,
                "price": {"currency_code": "EUR", "units": 2},
            }
        ),
        timeout=10,
    )
    return product_id


def order(stubs, items: dict[str, int], request_id: str = "", **call) -> pb.Order:
    request = pb.CreateOrderRequest(
        items=[pb.OrderItemRequest(product_id=p, quantity=q) for p, q in items.items()], request_id=request_id
    )
    return stubs.orders.CreateOrder(request, **({"timeout": 15} | call))


def stock(stubs, product_id: str) -> inventory_pb2.CheckStockResponse:
    return stubs.inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10)


def reconcile(mesh) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inventory.reconcile"],
        cwd=ROOT,
        env=dict(mesh.layout.env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_books_balance(mesh) -> None:
    checked = reconcile(mesh)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "the books balance"


def restart(mesh, name: str) -> None:
    mesh.stop_process(name)
    mesh.start_service(name)


def routed(stubs, product_id: str) -> bool:
    """Whether Envoy routes to every service again (a restarted one may not be yet)."""
    try:
        stock(stubs, product_id)
        stubs.orders.ListOrders(pb.ListOrdersRequest(page_size=1), timeout=10)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True


def test_an_order_process_killed_between_reserve_and_commit_leaks_no_stock(books_mesh, operator, customer):
    doomed = product(operator, 10, CRASHING_PRODUCT)
    kept = product(operator, 10)
    with pytest.raises(grpc.RpcError):
        order(customer, {doomed: 2, kept: 1})  # the Order service dies after the reservation
    assert books_mesh.processes["orders"].wait(10) == -9
    restart(books_mesh, "orders")
    assert settles(lambda: routed(customer, kept))
    acknowledged = order(customer, {kept: 3})
    reserved = stock(operator, doomed)
    assert (reserved.available, reserved.awaiting_order) == (8, 2)
    # past the expire_time and its grace, Inventory finds no order and gives the stock back
    assert settles(lambda: stock(operator, doomed).available == 10, timeout=30)
    after = stock(operator, kept)
    assert (after.available, after.reserved, after.awaiting_order) == (7, 3, 0)
    assert (
        operator.orders.GetOrder(pb.GetOrderRequest(order_id=acknowledged.order_id), timeout=10).status
        == pb.ORDER_STATUS_PENDING
    )
    assert_books_balance(books_mesh)


def test_a_cancel_succeeds_while_inventory_is_down_and_the_stock_returns_once(books_mesh, operator, customer):
    product_id = product(operator, 10)
    placed = [order(customer, {product_id: 1}) for _ in range(6)]
    assert settles(lambda: stock(operator, product_id).reserved == 6)
    books_mesh.kill("inventory")
    for each in placed:
        cancelled = customer.orders.CancelOrder(pb.CancelOrderRequest(order_id=each.order_id), timeout=10)
        assert cancelled.status == pb.ORDER_STATUS_CANCELLED
    books_mesh.start_service("inventory")
    time.sleep(0.2)
    books_mesh.kill("inventory")  # killed again while catching up
    books_mesh.start_service("inventory")
    assert settles(lambda: routed(operator, product_id))
    assert settles(lambda: stock(operator, product_id).available == 10)
    time.sleep(1)
    assert stock(operator, product_id).available == 10  # exactly once
    assert_books_balance(books_mesh)


def test_ship_and_cancel_racing_on_two_order_processes_exactly_one_wins(books_mesh, operator, customer):
    """Two Order processes on one PostgreSQL database; for each of 200 confirmed orders,
    ShipOrder through one and CancelOrder through the other at the same instant. (Two
    processes on one SQLite file take turns for every write: no race to see.)"""
    if database_url(books_mesh.layout.env, "orders").startswith("sqlite"):
        pytest.skip("replicas of the Order service share a PostgreSQL database")
    product_id = product(operator, 1000)
    placed = [order(customer, {product_id: 1 + i % 3}) for i in range(200)]
    for each in placed:
        operator.orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=each.order_id), timeout=10)
    second = f"127.0.0.1:{free_ports(1)[0]}"
    books_mesh.start_process("orders-2", [sys.executable, "-m", "orders"], second, env={"ORDERS_LISTEN": second})
    try:
        shipped, cancelled = asyncio.run(
            race(books_mesh.layout, books_mesh.layout.address("ORDERS_LISTEN"), second, placed)
        )
    finally:
        books_mesh.stop_process("orders-2")
    assert len(shipped) + len(cancelled) == 200 and not set(shipped) & set(cancelled)
    quantity = {o.order_id: o.items[0].quantity for o in placed}
    left = 1000 - sum(quantity[order_id] for order_id in shipped)
    assert settles(lambda: stock(operator, product_id).available == left, timeout=30)
    assert settles(
        lambda: stock(operator, product_id).reserved == 0
    )  # the follower releases cancelled ones as it reads them
    assert_books_balance(books_mesh)


async def race(layout, first: str, second: str, placed: list[pb.Order]) -> tuple[list[str], list[str]]:
    # straight to each process's own port, as Envoy reaches them
    async with layout.aio_channel(first, "orders", "envoy") as a, layout.aio_channel(second, "orders", "envoy") as b:
        ship, cancel = orders_pb2_grpc.OrderServiceStub(a), orders_pb2_grpc.OrderServiceStub(b)

        async def both(order_id: str) -> tuple[bool, bool]:
            outcomes = await asyncio.gather(
                ship.ShipOrder(pb.ShipOrderRequest(order_id=order_id), timeout=30),
                cancel.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=30),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, Exception) and not (
                    isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.FAILED_PRECONDITION
                ):
                    raise outcome
            return tuple(isinstance(outcome, pb.Order) for outcome in outcomes)

        results = await asyncio.gather(*(both(o.order_id) for o in placed))
    shipped = [o.order_id for o, (s, _) in zip(placed, results, strict=True) if s]
    cancelled = [o.order_id for o, (_, c) in zip(placed, results, strict=True) if c]
    return shipped, cancelled


class OrdersDatabaseLock:
    """Holds the Order service's event counter locked from outside, as a slow or stuck
    transaction (a backup, a long migration) would."""

    def __init__(self, mesh) -> None:
        self.url = database_url(mesh.layout.env, "orders")

    def hold(self, seconds: float) -> threading.Thread:
        ready = threading.Event()

        def run() -> None:
            if self.url.startswith("sqlite"):
                connection = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
                connection.execute("BEGIN IMMEDIATE")
            else:
                connection = psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql"))
                connection.execute("SELECT last_sequence FROM order_event_counter FOR UPDATE")
            ready.set()
            time.sleep(seconds)
            connection.close()  # ends the transaction: rolled back

        thread = threading.Thread(target=run)
        thread.start()
        ready.wait(10)
        return thread


def test_a_call_cancelled_by_its_deadline_during_a_slow_commit_keeps_its_stock(books_mesh, operator, customer):
    product_id = product(operator, 10)
    request_id = unique("slow")
    held = OrdersDatabaseLock(books_mesh).hold(1.5)  # shorter than the reservation's wait
    with pytest.raises(grpc.RpcError) as raised:
        order(customer, {product_id: 2}, request_id, timeout=0.7)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    held.join()
    # the order was stored once the lock was gone: the repeat returns it, and it holds its stock
    again = order(customer, {product_id: 2}, request_id)
    assert settles(lambda: stock(operator, product_id).reserved == 2, timeout=30)
    time.sleep(TTL_SECONDS + 2)  # nothing expires under it
    assert (stock(operator, product_id).available, stock(operator, product_id).reserved) == (8, 2)
    assert (
        operator.orders.GetOrder(pb.GetOrderRequest(order_id=again.order_id), timeout=10).status
        == pb.ORDER_STATUS_PENDING
    )
    assert_books_balance(books_mesh)


def test_a_repeat_after_a_failed_store_places_the_order_with_the_items_in_any_order(books_mesh, operator, customer):
    first, second = product(operator, 10), product(operator, 10)
    request_id = unique("retry")
    held = OrdersDatabaseLock(books_mesh).hold(TTL_SECONDS + 1.0)  # longer than the wait
    with pytest.raises(grpc.RpcError) as raised:
        order(customer, {first: 1, second: 2}, request_id)
    held.join()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
    assert "send the same request again" in raised.value.details()
    placed = order(customer, {second: 2, first: 1}, request_id)
    assert order(customer, {first: 1, second: 2}, request_id).order_id == placed.order_id
    assert settles(lambda: stock(operator, second).reserved == 2, timeout=30)
    time.sleep(TTL_SECONDS + 2)
    assert (stock(operator, first).available, stock(operator, second).available) == (9, 8)
    assert_books_balance(books_mesh)


def test_a_release_racing_a_slow_reserve_releases_it(books_mesh, operator):
    """On PostgreSQL a ReleaseStock waits on the key a running ReserveStock inserted."""
    url = database_url(books_mesh.layout.env, "inventory")
    if url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time: the two cannot overlap")
    product_id = product(operator, 10)
    reservation_id = unique("race")
    lock = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    lock.execute("SELECT available FROM products WHERE product_id = %s FOR UPDATE", (product_id,))
    with books_mesh.layout.channel(books_mesh.layout.mesh, "envoy", caller="orders") as channel:
        internal = stubs_for(channel)
        results = {}

        def call(name, method, request):
            try:
                results[name] = method(request, timeout=10)
            except grpc.RpcError as error:
                results[name] = error

        item = inventory_pb2.ReservationItem(product_id=product_id, quantity=4)
        reserve = threading.Thread(
            target=call,
            args=(
                "reserve",
                internal.inventory.ReserveStock,
                inventory_pb2.ReserveStockRequest(reservation_id=reservation_id, items=[item]),
            ),
        )
        release = threading.Thread(
            target=call,
            args=(
                "release",
                internal.inventory.ReleaseStock,
                inventory_pb2.ReleaseStockRequest(reservation_id=reservation_id),
            ),
        )
        reserve.start()
        time.sleep(0.5)  # the reservation's key is taken; it waits on the product row
        release.start()
        time.sleep(0.5)  # the release waits on the key
        lock.rollback()
        lock.close()
        reserve.join(15)
        release.join(15)
    assert isinstance(results["release"], inventory_pb2.Reservation), results["release"]
    assert results["release"].status == inventory_pb2.Reservation.STATUS_RELEASED
    assert stock(operator, product_id).available == 10


def test_replaying_the_whole_event_stream_changes_nothing(books_mesh, operator, customer):
    product_id = product(operator, 20)
    kept = order(customer, {product_id: 2})
    gone = order(customer, {product_id: 3})
    customer.orders.CancelOrder(pb.CancelOrderRequest(order_id=gone.order_id), timeout=10)
    operator.orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=kept.order_id), timeout=10)
    operator.orders.ShipOrder(pb.ShipOrderRequest(order_id=kept.order_id), timeout=10)
    # settled: the cancelled order's 3 units back, the shipped order's 2 gone
    assert settles(lambda: (stock(operator, product_id).available, stock(operator, product_id).reserved) == (18, 0))
    before = stock(operator, product_id)
    books_mesh.stop_process("inventory")
    engine = create_engine(database_url(books_mesh.layout.env, "inventory"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE stream_cursors SET last_sequence = 0"))
    engine.dispose()
    books_mesh.start_service("inventory")
    assert settles(lambda: routed(operator, product_id))
    time.sleep(2)  # every event applied again
    assert stock(operator, product_id) == before
    assert_books_balance(books_mesh)


def test_the_books_check_fails_when_the_books_do_not_balance(books_mesh, operator):
    product_id = product(operator, 5)
    engine = create_engine(database_url(books_mesh.layout.env, "inventory"))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE products SET available = available - 1 WHERE product_id = :p"), {"p": product_id}
        )
    try:
        checked = reconcile(books_mesh)
        assert checked.returncode == 1 and f"product {product_id}" in checked.stdout
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE products SET available = available + 1 WHERE product_id = :p"), {"p": product_id}
            )
        engine.dispose()
