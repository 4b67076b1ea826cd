"""Inventory rules, without network or database."""

import datetime as dt

import pytest

from inventory import domain
from inventory.domain import Product, Reservation, ReservationLine, ReservationStatus
from meshkit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from meshkit.money import Money

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_valid_product_passes():
    domain.validate_new_product(Product("WIDGET-1", "Widget", Money.of("EUR", 9, 990_000_000), 10))


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


def test_reservation_rejects_duplicates_and_bad_quantities():
    lines = [ReservationLine("A", 1), ReservationLine("A", 2), ReservationLine("B", 0)]
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_reservation("r-1", lines)
    assert [v.field for v in raised.value.violations] == ["items[1].product_id", "items[2].quantity"]


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
    domain.raise_if_short({"A": 5}, {"A": 5})


def reservation(status: ReservationStatus) -> Reservation:
    return Reservation("r-1", (ReservationLine("A", 2, Money.of("EUR", 1)),), status, NOW, NOW)


def test_repeating_a_reservation_is_allowed():
    domain.check_reservation_repeat(reservation(ReservationStatus.RESERVED), [ReservationLine("A", 2)])


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
