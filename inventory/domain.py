"""Inventory rules in plain Python: products, reservations and what makes them valid."""

import datetime as dt
import enum
import re
from dataclasses import dataclass

from meshkit.errors import AlreadyExists, FailedPrecondition, PreconditionViolation, Validator
from meshkit.items import MAX_PRODUCT_ID_LENGTH, check_items
from meshkit.money import Money, is_currency_code

MAX_TITLE_LENGTH = 200
MAX_RESERVATION_ID_LENGTH = 128
# Bounds that keep every stored count and every order total inside int64 (with
# meshkit.items' bounds on a request's items).
MAX_STOCK = 10**12
MAX_PRICE_UNITS = 10**9
_PRODUCT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_PRODUCT_ID_LENGTH - 1}}}")


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    price: Money
    available: int
    create_time: dt.datetime | None = None
    update_time: dt.datetime | None = None


class ReservationStatus(enum.Enum):
    # stock taken, waiting for its order until expire_time
    RESERVED = "RESERVED"
    # stock held for a live (pending or confirmed) order
    HELD = "HELD"
    # the order shipped: the stock left the shop
    SHIPPED = "SHIPPED"
    # stock back on the shelf: order cancelled, never appeared, or released on request
    RELEASED = "RELEASED"


# What an order's status makes of its reservation, and so where the books check expects
# it. The moves go one way only, so an event applied twice, or late, changes nothing.
_AFTER_ORDER = {
    "PENDING": ReservationStatus.HELD,
    "CONFIRMED": ReservationStatus.HELD,
    "SHIPPED": ReservationStatus.SHIPPED,
    "CANCELLED": ReservationStatus.RELEASED,
}
_MOVES = {
    ReservationStatus.RESERVED: {ReservationStatus.HELD, ReservationStatus.SHIPPED, ReservationStatus.RELEASED},
    ReservationStatus.HELD: {ReservationStatus.SHIPPED, ReservationStatus.RELEASED},
    ReservationStatus.SHIPPED: set(),
    ReservationStatus.RELEASED: set(),
}


def status_for_order(current: "ReservationStatus", order_status: str) -> "ReservationStatus | None":
    """The status a reservation moves to now that its order is in order_status; None
    when nothing changes (already there, or past it)."""
    target = _AFTER_ORDER.get(order_status)
    return target if target in _MOVES[current] else None


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
    # until when a RESERVED reservation waits for its order
    expire_time: dt.datetime | None = None

    def requested(self) -> dict[str, int]:
        return {line.product_id: line.quantity for line in self.lines}


def check_product_id(v: Validator, product_id: str, field: str = "product_id") -> bool:
    """Whether product_id has the form Inventory gives product ids (a violation in v if not)."""
    return v.check(
        bool(_PRODUCT_ID.fullmatch(product_id)),  # "$" would let a final line break through
        field,
        f"must be 1 to {MAX_PRODUCT_ID_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit",
    )


def validate_product_id(product_id: str) -> None:
    v = Validator()
    check_product_id(v, product_id)
    v.raise_if_any()


def validate_new_product(product: Product, price_problem: str | None = None) -> None:
    """InvalidArgument naming every violation of product; price_problem: what made the
    request's price unusable (missing, malformed), reported in place of product.price's checks."""
    v = Validator()
    check_product_id(v, product.product_id, "product.product_id")
    title = product.title.strip()
    v.check(bool(title), "product.title", "must not be empty")
    v.check(len(title) <= MAX_TITLE_LENGTH, "product.title", f"must be at most {MAX_TITLE_LENGTH} characters")
    v.check(title.isprintable(), "product.title", "must not contain control characters")
    if price_problem:
        v.add("product.price", price_problem)
    else:
        _check_price(v, product.price)
    v.check(0 <= product.available <= MAX_STOCK, "product.available", f"must be between 0 and {MAX_STOCK}")
    v.raise_if_any()


def _check_price(v: Validator, price: Money) -> None:
    v.check(
        is_currency_code(price.currency),
        "product.price.currency_code",
        "must be a three-letter ISO 4217 code such as EUR",
    )
    v.check(price.nanos >= 0, "product.price", "must not be negative")
    v.check(price.nanos < MAX_PRICE_UNITS * 10**9, "product.price", f"must be below {MAX_PRICE_UNITS} units")


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
    check_items(v, lines, check_product_id)
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


@dataclass(frozen=True)
class StockBook:
    """One product's books: free units, and units held, awaiting their order, shipped
    and received (initial stock plus restocks)."""

    product_id: str
    available: int
    held: int
    awaiting_order: int
    shipped: int
    received: int

    @property
    def balances(self) -> bool:
        return self.available + self.held + self.awaiting_order == self.received - self.shipped


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


@dataclass(frozen=True)
class OrderView:
    """What the books check needs of an order: its status and items."""

    order_id: str
    status: str
    items: dict[str, int]


def differences(
    orders: dict[str, OrderView], reservations: list[Reservation], books: list[StockBook], settled_by: dt.datetime
) -> list[str]:
    """Every way Inventory's books disagree with the orders, for a system that has been
    quiet for a while: reservations whose expire_time is before settled_by must have
    been settled by now."""
    found = []
    by_id = {r.reservation_id: r for r in reservations}
    for reservation in reservations:
        order = orders.get(reservation.reservation_id)
        rid, status = reservation.reservation_id, reservation.status
        if order is None:
            if status in (ReservationStatus.HELD, ReservationStatus.SHIPPED):
                found.append(f"reservation {rid} is {status.value} for an order that does not exist")
            elif (
                status is ReservationStatus.RESERVED
                and reservation.expire_time is not None
                and reservation.expire_time < settled_by
            ):
                found.append(f"reservation {rid} still waits for its order, past its expire_time")
            continue
        expected = _AFTER_ORDER[order.status]
        if status is not expected:
            found.append(
                f"reservation {rid} is {status.value}, its order is {order.status} (expected {expected.value})"
            )
        if reservation.requested() != order.items:
            found.append(f"reservation {rid} holds {reservation.requested()}, its order has {order.items}")
    for order in orders.values():
        if order.order_id not in by_id:
            found.append(f"order {order.order_id} ({order.status}) has no reservation")
    units: dict[tuple[str, ReservationStatus], int] = {}
    for reservation in reservations:
        for line in reservation.lines:
            key = (line.product_id, reservation.status)
            units[key] = units.get(key, 0) + line.quantity
    for book in books:
        for status, counted in (
            (ReservationStatus.RESERVED, book.awaiting_order),
            (ReservationStatus.HELD, book.held),
            (ReservationStatus.SHIPPED, book.shipped),
        ):
            if units.get((book.product_id, status), 0) != counted:
                found.append(
                    f"product {book.product_id}: the books count {counted} units {status.value}, "
                    f"its reservations {units.get((book.product_id, status), 0)}"
                )
        if not book.balances:
            found.append(
                f"product {book.product_id}: available {book.available} + held {book.held} + awaiting "
                f"{book.awaiting_order} != received {book.received} - shipped {book.shipped}"
            )
    return found
