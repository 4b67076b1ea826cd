"""OrderWorkflow with in-memory fakes of its ports (orders.ports): no network, no database.

The fakes keep the promises of the real parts that the workflow relies on: Inventory's
ReserveStock is idempotent by reservation id (AlreadyExists for other items under the same
id), and the store refuses a second order of a request_id (RequestConflict) and any commit
after its deadline (ReservationExpired)."""

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import pytest

from meshkit.caller import Caller
from meshkit.database import utcnow
from meshkit.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from meshkit.money import Money
from orders import domain
from orders.domain import ItemRequest, OrderStatus
from orders.ports import RequestConflict, ReservationExpired, Reserved, StoredOrder
from orders.protos import serialized
from orders.workflow import OrderWorkflow

PRICES = {"A": Money.of("EUR", 3), "B": Money.of("EUR", 5)}
ANN = "ann@example.com"
BOB = "bob@example.com"
OTHERS_REQUEST = "request_id 'r-1' was already used for an order with another customer or other items"


class FakeInventory:
    """Inventory's ReserveStock in memory: one reservation per id, priced from PRICES."""

    def __init__(
        self,
        hold: dt.timedelta = dt.timedelta(minutes=5),
        while_reserving: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.hold = hold
        # run once inside the first reserve(): what a concurrent request does meanwhile
        self.while_reserving = while_reserving
        self.refusal: Exception | None = None  # what reserve() raises, as Inventory refusing the items
        self.calls: list[str] = []
        self.reservations: dict[str, tuple[dict[str, int], Reserved]] = {}

    async def reserve(self, reservation_id: str, items: tuple[domain.ItemRequest, ...]) -> Reserved:
        self.calls.append(reservation_id)
        if self.refusal is not None:
            raise self.refusal
        requested = {item.product_id: item.quantity for item in items}
        if reservation_id not in self.reservations:
            lines = [domain.OrderLine(i.product_id, i.quantity, PRICES[i.product_id]) for i in items]
            self.reservations[reservation_id] = (requested, Reserved(lines, utcnow() + self.hold))
        first_requested, reserved = self.reservations[reservation_id]
        if requested != first_requested:
            raise AlreadyExists("reservation", reservation_id)
        if self.while_reserving is not None:
            concurrently, self.while_reserving = self.while_reserving, None
            await concurrently()
        return reserved


class FakeOrderStore:
    """The order database in memory."""

    def __init__(self) -> None:
        self.orders: dict[str, domain.Order] = {}
        self.requests: dict[str, tuple[str, str]] = {}  # request_id -> order_id, fingerprint
        self.deadlines: list[dt.datetime] = []
        self.reads = 0
        self.failure: Exception | None = None  # what the next create() raises

    async def find_by_request(self, request_id: str) -> tuple[domain.Order, str | None] | None:
        found = self.requests.get(request_id)
        return None if found is None else (self.orders[found[0]], found[1])

    async def create(
        self, order: domain.Order, request_id: str, fingerprint: str, deadline: dt.datetime
    ) -> domain.Order:
        self.deadlines.append(deadline)
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        if request_id in self.requests:
            order_id, first_fingerprint = self.requests[request_id]
            raise RequestConflict(self.orders[order_id], first_fingerprint)
        if utcnow() >= deadline:
            raise ReservationExpired()
        self.orders[order.order_id] = order
        if request_id:
            self.requests[request_id] = (order.order_id, fingerprint)
        return order

    async def stored(self, order_id: str) -> StoredOrder:
        self.reads += 1
        if order_id not in self.orders:
            raise NotFound("order", order_id)
        order = self.orders[order_id]
        return StoredOrder(order.customer_email, serialized(order))

    async def move(self, order_id: str, target: domain.OrderStatus, now: dt.datetime) -> domain.Order:
        if order_id not in self.orders:
            raise NotFound("order", order_id)
        moved = self.orders[order_id] = self.orders[order_id].moved_to(target, now)
        return moved


class Changes:
    """The on_change callback: the stored statuses each time it is told of a change."""

    def __init__(self, store: FakeOrderStore) -> None:
        self._store = store
        self.seen: list[dict[str, OrderStatus]] = []

    def __call__(self) -> None:
        self.seen.append({order_id: order.status for order_id, order in self._store.orders.items()})


class Shop:
    """A workflow wired to fakes."""

    def __init__(self, inventory: FakeInventory | None = None) -> None:
        self.store = FakeOrderStore()
        self.inventory = inventory or FakeInventory()
        self.changes = Changes(self.store)
        self.workflow = OrderWorkflow(self.store, self.inventory, self.changes)


def new_order(customer: str = ANN, request_id: str = "r-1", **quantities: int) -> domain.NewOrder:
    items = [ItemRequest(product_id, quantity) for product_id, quantity in (quantities or {"A": 2}).items()]
    return domain.validate_new_order(customer, items, request_id)


def customer(email: str) -> Caller:
    return Caller(via_edge=True, subject=email, email=email, roles=frozenset({"customer"}))


async def test_a_new_order_is_reserved_priced_stored_and_announced_once() -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order(A=2, B=1))
    assert order.order_id == new_order(A=2, B=1).new_order_id()
    assert (order.customer_email, order.status, order.total) == (ANN, OrderStatus.PENDING, Money.of("EUR", 11))
    assert [(line.product_id, line.quantity, line.unit_price) for line in order.lines] == [
        ("A", 2, Money.of("EUR", 3)),
        ("B", 1, Money.of("EUR", 5)),
    ]
    assert shop.store.orders == {order.order_id: order}
    # stored only while the reservation holds
    assert shop.store.deadlines == [shop.inventory.reservations[order.order_id][1].expire_time]
    assert shop.changes.seen == [{order.order_id: OrderStatus.PENDING}]


async def test_the_order_id_of_a_request_is_its_uuid5_so_every_repeat_reserves_under_it() -> None:
    new = new_order()
    order_id = new.new_order_id()
    assert uuid.UUID(order_id).version == 5
    assert new_order().new_order_id() == order_id
    assert new_order(request_id="r-2").new_order_id() != order_id


async def test_a_retry_after_storing_failed_reserves_once_and_stores_the_order() -> None:
    shop = Shop()
    shop.store.failure = RuntimeError("the orders database refused the write")
    with pytest.raises(RuntimeError, match="^the orders database refused the write$"):
        await shop.workflow.create(new_order())
    assert shop.store.orders == {}
    assert shop.changes.seen == []  # nothing was committed
    order = await shop.workflow.create(new_order())
    assert shop.inventory.calls == [order.order_id, order.order_id]
    assert list(shop.inventory.reservations) == [order.order_id]
    assert shop.store.orders == {order.order_id: order}
    assert shop.changes.seen == [{order.order_id: OrderStatus.PENDING}]


async def test_without_a_request_id_every_call_is_another_order() -> None:
    shop = Shop()
    first = await shop.workflow.create(new_order(request_id=""))
    second = await shop.workflow.create(new_order(request_id=""))
    assert first.order_id != second.order_id
    assert uuid.UUID(first.order_id).version == 4
    assert shop.inventory.calls == [first.order_id, second.order_id]
    assert len(shop.changes.seen) == 2


async def test_a_repeat_returns_the_first_order_without_reserving_again() -> None:
    shop = Shop()
    first = await shop.workflow.create(new_order(A=2, B=1))
    # the same items in another order are the same request
    again = await shop.workflow.create(new_order(B=1, A=2))
    assert again == first
    assert shop.inventory.calls == [first.order_id]
    assert shop.changes.seen == [{first.order_id: OrderStatus.PENDING}]


@pytest.mark.parametrize(
    "repeat",
    [new_order(customer=BOB), new_order(A=3), new_order(A=2, B=1)],
    ids=["another customer", "another quantity", "another item"],
)
async def test_a_repeat_that_asks_for_something_else_already_exists(repeat: domain.NewOrder) -> None:
    shop = Shop()
    first = await shop.workflow.create(new_order())
    with pytest.raises(AlreadyExists) as raised:
        await shop.workflow.create(repeat)
    assert raised.value.message == OTHERS_REQUEST
    assert (raised.value.resource_type, raised.value.name) == ("request", "r-1")
    assert shop.inventory.calls == [first.order_id]
    assert shop.store.orders == {first.order_id: first}
    assert len(shop.changes.seen) == 1


async def test_a_concurrent_repeat_that_stored_first_gives_its_order() -> None:
    stored_first: list[domain.Order] = []

    async def same_request_commits_first() -> None:
        stored_first.append(await shop.workflow.create(new_order()))

    shop = Shop(FakeInventory(while_reserving=same_request_commits_first))
    order = await shop.workflow.create(new_order())
    assert order == stored_first[0]
    assert shop.store.orders == {order.order_id: order}
    assert list(shop.inventory.reservations) == [order.order_id]
    # told once, by the request that stored the order
    assert shop.changes.seen == [{order.order_id: OrderStatus.PENDING}]


async def test_a_concurrent_request_of_another_customer_with_the_same_request_id_already_exists() -> None:
    stored_first: list[domain.Order] = []

    async def bobs_request_commits_first() -> None:
        stored_first.append(await shop.workflow.create(new_order(customer=BOB)))

    # the same items: Inventory takes the repeat of the reservation, only the store tells them apart
    shop = Shop(FakeInventory(while_reserving=bobs_request_commits_first))
    with pytest.raises(AlreadyExists) as raised:
        await shop.workflow.create(new_order(customer=ANN))
    assert raised.value.message == OTHERS_REQUEST
    assert shop.store.orders == {stored_first[0].order_id: stored_first[0]}
    assert shop.changes.seen == [{stored_first[0].order_id: OrderStatus.PENDING}]


async def test_an_order_not_stored_before_its_reservation_expires_is_unavailable() -> None:
    shop = Shop(FakeInventory(hold=dt.timedelta(seconds=-1)))
    with pytest.raises(ReservationExpired) as raised:
        await shop.workflow.create(new_order())
    assert isinstance(raised.value, Unavailable)
    assert raised.value.reason == "RESERVATION_EXPIRED"
    order_id = new_order().new_order_id()
    assert shop.store.deadlines == [shop.inventory.reservations[order_id][1].expire_time]
    assert shop.store.orders == {}
    assert shop.changes.seen == []


async def test_an_order_inventory_refuses_stores_nothing() -> None:
    shop = Shop()
    shortage = FailedPrecondition("not enough stock", reason="INSUFFICIENT_STOCK")
    shop.inventory.refusal = shortage
    with pytest.raises(FailedPrecondition) as raised:
        await shop.workflow.create(new_order())
    assert raised.value is shortage
    assert shop.store.deadlines == []
    assert shop.store.orders == {}
    assert shop.changes.seen == []


async def test_a_customer_moves_their_own_order_and_streams_are_told_once() -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order())
    moved = await shop.workflow.move(order.order_id, OrderStatus.CANCELLED, customer(ANN.upper()))
    assert (moved.status, moved.create_time) == (OrderStatus.CANCELLED, order.create_time)
    assert shop.store.orders[order.order_id] == moved
    assert shop.changes.seen == [{order.order_id: OrderStatus.PENDING}, {order.order_id: OrderStatus.CANCELLED}]


async def test_someone_elses_order_is_not_found_exactly_like_a_missing_one() -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order())
    for order_id in (order.order_id, "no-such-order"):
        with pytest.raises(NotFound) as raised:
            await shop.workflow.move(order_id, OrderStatus.CANCELLED, customer(BOB))
        assert (raised.value.message, raised.value.reason) == (f"order not found: {order_id}", "NOT_FOUND")
        with pytest.raises(NotFound) as raised:
            await shop.workflow.get(order_id, customer(BOB))
        assert raised.value.message == f"order not found: {order_id}"
    assert shop.store.orders[order.order_id] == order
    assert len(shop.changes.seen) == 1


@pytest.mark.parametrize(
    "caller",
    [Caller(via_edge=True, subject="op", email="op@example.com", roles=frozenset({"operator"})), Caller()],
    ids=["operator", "service"],
)
async def test_an_operator_or_service_moves_any_order_without_an_ownership_read(caller: Caller) -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order())
    moved = await shop.workflow.move(order.order_id, OrderStatus.CONFIRMED, caller)
    assert moved.status is OrderStatus.CONFIRMED
    assert shop.store.reads == 0
    assert shop.changes.seen[-1] == {order.order_id: OrderStatus.CONFIRMED}
    assert len(shop.changes.seen) == 2


async def test_a_refused_move_changes_nothing_and_tells_no_stream() -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order())
    with pytest.raises(FailedPrecondition) as raised:
        await shop.workflow.move(order.order_id, OrderStatus.SHIPPED, customer(ANN))
    assert raised.value.reason == "ILLEGAL_STATUS_TRANSITION"
    assert shop.store.orders[order.order_id] == order
    assert len(shop.changes.seen) == 1


async def test_a_customer_gets_their_own_order_as_stored() -> None:
    shop = Shop()
    order = await shop.workflow.create(new_order())
    assert await shop.workflow.get(order.order_id, customer(ANN)) == serialized(order)
