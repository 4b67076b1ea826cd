"""Inventory rules in plain Python: products, reservations and what makes them valid."""

import datetime as dt
import enum
import re
from dataclasses import dataclass

from meshkit.errors import AlreadyExists, FailedPrecondition, PreconditionViolation, Validator
from meshkit.money import Money, is_currency_code

MAX_TITLE_LENGTH = 200
MAX_RESERVATION_ITEMS = 100
MAX_RESERVATION_ID_LENGTH = 128
# Bounds that keep every stored count and every order total inside int64.
MAX_STOCK = 10**12
MAX_QUANTITY = 10**6
MAX_PRICE_UNITS = 10**9
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    price: Money
    available: int
    create_time: dt.datetime | None = None
    update_time: dt.datetime | None = None


class ReservationStatus(enum.Enum):
    RESERVED = "RESERVED"
    RELEASED = "RELEASED"


@dataclass(frozen=True)
class ReservationLine:
    product_id: str
    quantity: int
    unit_price: Money | None = None


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    lines: tuple[ReservationLine, ...]
    status: ReservationStatus
    create_time: dt.datetime
    update_time: dt.datetime

    def requested(self) -> dict[str, int]:
        return {line.product_id: line.quantity for line in self.lines}


def check_product_id(v: Validator, product_id: str, field: str = "product_id") -> None:
    v.check(
        bool(_PRODUCT_ID.match(product_id)),
        field,
        "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    )


def validate_product_id(product_id: str) -> None:
    v = Validator()
    check_product_id(v, product_id)
    v.raise_if_any()


def validate_new_product(product: Product) -> None:
    v = Validator()
    check_product_id(v, product.product_id, "product.product_id")
    title = product.title.strip()
    v.check(bool(title), "product.title", "must not be empty")
    v.check(len(title) <= MAX_TITLE_LENGTH, "product.title", f"must be at most {MAX_TITLE_LENGTH} characters")
    v.check(title.isprintable(), "product.title", "must not contain control characters")
    v.check(
        is_currency_code(product.price.currency),
        "product.price.currency_code",
        "must be a three-letter ISO 4217 code such as EUR",
    )
    v.check(product.price.nanos >= 0, "product.price", "must not be negative")
    v.check(product.price.nanos < MAX_PRICE_UNITS * 10**9, "product.price", f"must be below {MAX_PRICE_UNITS} units")
    v.check(0 <= product.available <= MAX_STOCK, "product.available", f"must be between 0 and {MAX_STOCK}")
    v.raise_if_any()


def validate_restock(product_id: str, quantity: int) -> None:
    v = Validator()
    check_product_id(v, product_id)
    v.check(quantity > 0, "quantity", "must be positive")
    v.check(quantity <= MAX_STOCK, "quantity", f"must be at most {MAX_STOCK}")
    v.raise_if_any()


def check_restock_fits(product: Product, quantity: int) -> None:
    if product.available + quantity > MAX_STOCK:
        raise FailedPrecondition(
            f"restocking {product.product_id} by {quantity} would exceed {MAX_STOCK} units",
            [PreconditionViolation("STOCK_LIMIT", f"products/{product.product_id}", f"at most {MAX_STOCK} units")],
        )


def _check_reservation_id(v: Validator, reservation_id: str) -> None:
    v.check(bool(reservation_id), "reservation_id", "must not be empty")
    v.check(
        len(reservation_id) <= MAX_RESERVATION_ID_LENGTH,
        "reservation_id",
        f"must be at most {MAX_RESERVATION_ID_LENGTH} characters",
    )


def validate_reservation_id(reservation_id: str) -> None:
    v = Validator()
    _check_reservation_id(v, reservation_id)
    v.raise_if_any()


def validate_reservation(reservation_id: str, lines: list[ReservationLine]) -> None:
    v = Validator()
    _check_reservation_id(v, reservation_id)
    v.check(bool(lines), "items", "must list at least one item")
    v.check(len(lines) <= MAX_RESERVATION_ITEMS, "items", f"must list at most {MAX_RESERVATION_ITEMS} items")
    seen: set[str] = set()
    for i, line in enumerate(lines):
        check_product_id(v, line.product_id, f"items[{i}].product_id")
        v.check(line.product_id not in seen, f"items[{i}].product_id", f"{line.product_id} is listed twice")
        seen.add(line.product_id)
        v.check(line.quantity > 0, f"items[{i}].quantity", "must be positive")
        v.check(line.quantity <= MAX_QUANTITY, f"items[{i}].quantity", f"must be at most {MAX_QUANTITY}")
    v.raise_if_any()


def shortages(requested: dict[str, int], available: dict[str, int]) -> list[PreconditionViolation]:
    """One violation per product that has fewer units free than requested."""
    return [
        PreconditionViolation(
            "STOCK",
            f"products/{product_id}",
            f"requested {quantity}, available {available[product_id]}",
        )
        for product_id, quantity in sorted(requested.items())
        if available[product_id] < quantity
    ]


def raise_if_short(requested: dict[str, int], available: dict[str, int]) -> None:
    short = shortages(requested, available)
    if short:
        names = ", ".join(v.subject.removeprefix("products/") for v in short)
        raise FailedPrecondition(f"insufficient stock for {names}", short, reason="INSUFFICIENT_STOCK")


def check_reservation_repeat(existing: Reservation, lines: list[ReservationLine]) -> None:
    """A repeated ReserveStock must ask for what the first one reserved."""
    if existing.status is ReservationStatus.RELEASED:
        raise FailedPrecondition(
            f"reservation {existing.reservation_id} was released and cannot be reserved again",
            [PreconditionViolation("RESERVATION", f"reservations/{existing.reservation_id}", "released")],
            reason="RESERVATION_RELEASED",
        )
    if existing.requested() != {line.product_id: line.quantity for line in lines}:
        raise AlreadyExists(
            "reservation",
            existing.reservation_id,
            f"reservation {existing.reservation_id} already exists with other items",
        )
