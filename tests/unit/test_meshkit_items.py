"""The rules every request's items follow, in the Order and Inventory services alike."""

from dataclasses import dataclass

import pytest

from meshkit.errors import FieldViolation, Validator
from meshkit.items import MAX_ITEMS, MAX_QUANTITY, check_items, check_product_id_length


@dataclass(frozen=True)
class Item:
    product_id: str
    quantity: int


def violations(items: list[Item]) -> list[FieldViolation]:
    v = Validator()
    check_items(v, items, check_product_id_length)
    return v.violations


def test_the_limits_are_those_of_the_contract():
    assert (MAX_ITEMS, MAX_QUANTITY) == (100, 10**6)


def test_items_within_every_limit_pass():
    items = [Item(f"P-{i}", MAX_QUANTITY if i % 2 else 1) for i in range(MAX_ITEMS)]
    assert violations(items) == []


def test_no_items_and_too_many_items_are_named():
    assert violations([]) == [FieldViolation("items", "must list at least one item")]
    too_many = [Item(f"P-{i}", 1) for i in range(MAX_ITEMS + 1)]
    assert violations(too_many) == [FieldViolation("items", "must list at most 100 items")]


@pytest.mark.parametrize(
    "quantity, description",
    [(0, "must be positive"), (-3, "must be positive"), (MAX_QUANTITY + 1, "must be at most 1000000")],
)
def test_a_quantity_outside_its_bounds_is_named(quantity, description):
    assert violations([Item("A", 1), Item("B", quantity)]) == [FieldViolation("items[1].quantity", description)]


def test_a_product_listed_twice_is_named_where_it_comes_again():
    assert violations([Item("A", 1), Item("B", 1), Item("A", 2)]) == [
        FieldViolation("items[2].product_id", "A is listed twice")
    ]


def test_a_refused_product_id_is_named_once_even_when_it_comes_again():
    assert violations([Item("", 1), Item("", 1), Item("x" * 65, 1)]) == [
        FieldViolation("items[0].product_id", "must be 1 to 64 characters"),
        FieldViolation("items[1].product_id", "must be 1 to 64 characters"),
        FieldViolation("items[2].product_id", "must be 1 to 64 characters"),
    ]
