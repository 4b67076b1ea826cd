"""The items of a request for goods (CreateOrder's, ReserveStock's): how many, how much of
each, each product once. The Order and Inventory services check them by the same rules
and limits, so that what one accepts the other does too."""

from collections.abc import Callable, Sequence
from typing import Protocol

from meshkit.errors import Validator

MAX_ITEMS = 100
# With prices below 10^9 units, 100 items of at most 10^6 each keep every total inside
# google.type.Money's int64 units.
MAX_QUANTITY = 10**6
MAX_PRODUCT_ID_LENGTH = 64


class Item(Protocol):
    """One item of a request: a product and how many of it."""

    @property
    def product_id(self) -> str: ...

    @property
    def quantity(self) -> int: ...


# Checks a product id (the validator, the id, its field path); true if the id is good.
ProductIdCheck = Callable[[Validator, str, str], bool]


def check_product_id_length(v: Validator, product_id: str, field: str) -> bool:
    """The least any product id must be: 1 to MAX_PRODUCT_ID_LENGTH characters."""
    return v.check(
        0 < len(product_id) <= MAX_PRODUCT_ID_LENGTH, field, f"must be 1 to {MAX_PRODUCT_ID_LENGTH} characters"
    )


def check_items(v: Validator, items: Sequence[Item], check_product_id: ProductIdCheck) -> None:
    """Adds to v every violation of items (under "items" and "items[i].<field>"): none or
    more than MAX_ITEMS, a product id check_product_id refuses or listed twice, a quantity
    outside 1..MAX_QUANTITY."""
    v.check(bool(items), "items", "must list at least one item")
    v.check(len(items) <= MAX_ITEMS, "items", f"must list at most {MAX_ITEMS} items")
    seen: set[str] = set()
    for i, item in enumerate(items):
        field = f"items[{i}].product_id"
        # a malformed id is named once, as malformed, even when it is listed again
        if check_product_id(v, item.product_id, field):
            v.check(item.product_id not in seen, field, f"{item.product_id} is listed twice")
        seen.add(item.product_id)
        v.check(item.quantity > 0, f"items[{i}].quantity", "must be positive")
        v.check(item.quantity <= MAX_QUANTITY, f"items[{i}].quantity", f"must be at most {MAX_QUANTITY}")
