"""Inventory rules, without network or database."""

import datetime as dt

import pytest

from inventory import domain
from inventory.domain import Product, Reservation, ReservationLine, ReservationStatus, StockBook, status_for_order
from meshkit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from meshkit.money import Money

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_valid_product_passes():
    assert domain.validate_new_product(Product("WIDGET-1", "Widget", Money.of("EUR", 9, 990_000_000), 10)) is None


def test_product_violations_are_all_reported():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_new_product(Product("bad id!", "  ", Money.of("eur", -1), -5))
    assert [v.field for v in raised.value.violations] == [
        "product.product_id",
        "product.title",
        "product.price.currency_code",
        "product.price",
        "product.available",
    ]


def test_a_price_the_request_could_not_give_is_named_with_the_other_violations():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_new_product(Product("", "Widget", Money.of("", 0), 1), price_problem="is required")
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("product.product_id", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
        ("product.price", "is required"),
    ]


def test_a_final_line_break_makes_a_product_id_and_a_currency_code_invalid():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_new_product(Product("WIDGET-1\n", "Widget", Money.of("EUR\n", 1), 1))
    assert [v.field for v in raised.value.violations] == ["product.product_id", "product.price.currency_code"]


def test_reservation_rejects_duplicates_and_bad_quantities():
    lines = [ReservationLine("A", 1), ReservationLine("A", 2), ReservationLine("B", 0)]
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_reservation("r-1", lines)
    assert [v.field for v in raised.value.violations] == ["items[1].product_id", "items[2].quantity"]


def test_reservation_items_follow_the_shared_rules_with_inventorys_product_id_form():
    lines = [ReservationLine("bad id!", 1), ReservationLine("bad id!", 10**6 + 1), ReservationLine("A", 1)]
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_reservation("r-1", lines)
    form = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("items[0].product_id", form),
        ("items[1].product_id", form),
        ("items[1].quantity", "must be at most 1000000"),
    ]


def test_reservation_needs_an_id_and_items():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_reservation("", [])
    assert [v.field for v in raised.value.violations] == ["reservation_id", "items"]


def test_every_short_product_is_named():
    with pytest.raises(FailedPrecondition) as raised:
        domain.raise_if_short({"A": 5, "B": 1, "C": 9}, {"A": 4, "B": 1, "C": 0})
    assert [v.subject for v in raised.value.violations] == ["products/A", "products/C"]
    assert raised.value.violations[0].description == "requested 5, available 4"
    assert raised.value.reason == "INSUFFICIENT_STOCK"


def test_enough_stock_raises_nothing():
    assert domain.raise_if_short({"A": 5}, {"A": 5}) is None


def reservation(status: ReservationStatus) -> Reservation:
    return Reservation("r-1", (ReservationLine("A", 2, Money.of("EUR", 1)),), status, NOW, NOW)


def test_repeating_a_reservation_is_allowed():
    assert domain.check_reservation_repeat(reservation(ReservationStatus.RESERVED), [ReservationLine("A", 2)]) is None


def test_reusing_a_reservation_id_for_other_items_is_refused():
    with pytest.raises(AlreadyExists):
        domain.check_reservation_repeat(reservation(ReservationStatus.RESERVED), [ReservationLine("A", 3)])


def test_a_released_reservation_cannot_be_reserved_again():
    with pytest.raises(FailedPrecondition, match="released"):
        domain.check_reservation_repeat(reservation(ReservationStatus.RELEASED), [ReservationLine("A", 2)])


def test_restock_cannot_exceed_the_stock_limit():
    product = Product("A", "A", Money.of("EUR", 1), domain.MAX_STOCK - 1)
    domain.check_restock_fits(product, 1)
    with pytest.raises(FailedPrecondition):
        domain.check_restock_fits(product, 2)


@pytest.mark.parametrize(
    "current, order_status, after",
    [
        (ReservationStatus.RESERVED, "PENDING", ReservationStatus.HELD),
        (ReservationStatus.RESERVED, "CANCELLED", ReservationStatus.RELEASED),
        (ReservationStatus.RESERVED, "SHIPPED", ReservationStatus.SHIPPED),
        (ReservationStatus.HELD, "CONFIRMED", None),
        (ReservationStatus.HELD, "SHIPPED", ReservationStatus.SHIPPED),
        (ReservationStatus.HELD, "CANCELLED", ReservationStatus.RELEASED),
        # one way only: an event applied again, or late, changes nothing
        (ReservationStatus.SHIPPED, "CANCELLED", None),
        (ReservationStatus.RELEASED, "CANCELLED", None),
        (ReservationStatus.RELEASED, "PENDING", None),
        (ReservationStatus.SHIPPED, "PENDING", None),
    ],
)
def test_a_reservation_follows_its_order(current, order_status, after):
    assert status_for_order(current, order_status) is after


def test_the_books_balance_when_nothing_was_created_or_lost():
    assert StockBook("P", available=5, held=3, awaiting_order=1, shipped=2, received=11).balances
    assert not StockBook("P", available=6, held=3, awaiting_order=1, shipped=2, received=11).balances


def reservation_of(rid: str, status: ReservationStatus, expire_in: float = 60, **items: int) -> Reservation:
    now = dt.datetime.now(dt.UTC)
    lines = tuple(ReservationLine(p, q) for p, q in items.items())
    return Reservation(rid, lines, status, now, now, now + dt.timedelta(seconds=expire_in))


def test_the_books_check_names_every_difference():
    now = dt.datetime.now(dt.UTC)
    orders = {
        "live": domain.OrderView("live", "CONFIRMED", {"P": 1}),
        "cancelled": domain.OrderView("cancelled", "CANCELLED", {"P": 2}),
        "lost": domain.OrderView("lost", "PENDING", {"P": 1}),
    }
    reservations = [
        reservation_of("live", ReservationStatus.HELD, P=1),
        reservation_of("cancelled", ReservationStatus.HELD, P=2),  # stock never came back
        reservation_of("orphan", ReservationStatus.RESERVED, expire_in=-30, P=4),  # never settled
        reservation_of("young", ReservationStatus.RESERVED, expire_in=60, P=1),  # still waiting: fine
        reservation_of("ghost", ReservationStatus.SHIPPED, P=1),  # shipped for no order
    ]
    found = domain.differences(orders, reservations, [StockBook("P", 2, 3, 5, 1, 10)], settled_by=now)
    assert len(found) == 5, found
    assert any("cancelled is HELD" in f for f in found) and any("orphan still waits" in f for f in found)
    assert any("ghost is SHIPPED" in f for f in found) and any("order lost" in f for f in found)
    assert any(f.startswith("product P") for f in found)


def test_balanced_books_have_no_difference():
    now = dt.datetime.now(dt.UTC)
    orders = {"o": domain.OrderView("o", "SHIPPED", {"P": 2})}
    reservations = [
        reservation_of("o", ReservationStatus.SHIPPED, P=2),
        reservation_of("gone", ReservationStatus.RELEASED, P=1),
    ]
    assert domain.differences(orders, reservations, [StockBook("P", 8, 0, 0, 2, 10)], settled_by=now) == []
