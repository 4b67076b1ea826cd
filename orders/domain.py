"""Order rules in plain Python: what a valid order is, how its status may move,
and what each change records as an event."""

import datetime as dt
import enum
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, replace

from meshkit.errors import FailedPrecondition, PreconditionViolation, Validator
from meshkit.items import check_items, check_product_id_length
from meshkit.money import Money

MAX_REQUEST_ID_LENGTH = 128
MAX_EMAIL_LENGTH = 254
# Order ids made from a request_id are UUIDv5 in this namespace, so that every
# repeat of a request reserves stock under the same reservation id.
_REQUEST_NAMESPACE = uuid.UUID("5e0c3b6e-4a8f-4f65-9b5c-1f3c7a0d2e91")
# A plain addr-spec: no display name, no comments, no whitespace or control
# characters (so no CR/LF header injection), a dotted domain.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.SHIPPED, OrderStatus.CANCELLED)


ALLOWED_MOVES = {
    OrderStatus.PENDING: {OrderStatus.CONFIRMED, OrderStatus.CANCELLED},
    OrderStatus.CONFIRMED: {OrderStatus.SHIPPED, OrderStatus.CANCELLED},
    OrderStatus.SHIPPED: set(),
    OrderStatus.CANCELLED: set(),
}


class EventType(enum.Enum):
    CREATED = "CREATED"
    STATUS_CHANGED = "STATUS_CHANGED"


@dataclass(frozen=True)
class ItemRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_email: str
    lines: tuple[OrderLine, ...]
    status: OrderStatus
    total: Money
    create_time: dt.datetime
    update_time: dt.datetime

    def moved_to(self, target: OrderStatus, now: dt.datetime) -> "Order":
        """This order in status target, or FailedPrecondition if the move is not allowed."""
        if target not in ALLOWED_MOVES[self.status]:
            raise FailedPrecondition(
                f"order {self.order_id} is {self.status.value} and cannot become {target.value}",
                [
                    PreconditionViolation(
                        "ORDER_STATUS",
                        f"orders/{self.order_id}",
                        f"status is {self.status.value}; allowed from there: "
                        + (", ".join(sorted(s.value for s in ALLOWED_MOVES[self.status])) or "none"),
                    )
                ],
                reason="ILLEGAL_STATUS_TRANSITION",
            )
        return replace(self, status=target, update_time=now)


@dataclass(frozen=True)
class OrderEvent:
    sequence: int
    type: EventType
    order: Order
    previous_status: OrderStatus | None
    event_time: dt.datetime
    trace_parent: str | None = None  # W3C traceparent of the call that made the change


@dataclass(frozen=True)
class NewOrder:
    """A validated CreateOrder request."""

    customer_email: str
    items: tuple[ItemRequest, ...]
    request_id: str

    def new_order_id(self) -> str:
        """Derived from request_id when there is one, so every repeat gets the same id."""
        if self.request_id:
            return str(uuid.uuid5(_REQUEST_NAMESPACE, self.request_id))
        return str(uuid.uuid4())

    def fingerprint(self) -> str:
        """What a repeat of the same request_id must ask for again."""
        # the items in any order are the same request (Inventory compares them so too)
        payload = [self.customer_email, sorted((i.product_id, i.quantity) for i in self.items)]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def email_problem(email: str) -> str | None:
    if not email:
        return "must not be empty"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    if any(c in email for c in "\r\n"):
        return "must not contain line breaks"
    if not _EMAIL.fullmatch(email) or len(email.partition("@")[0]) > 64:
        return "is not a valid email address (expected a plain address like name@example.com)"
    return None


def validate_new_order(customer_email: str, items: list[ItemRequest], request_id: str) -> NewOrder:
    v = Validator()
    problem = email_problem(customer_email)
    if problem:
        v.add("customer_email", problem)
    # Inventory owns product ids and checks their form; an order only needs one.
    check_items(v, items, check_product_id_length)
    v.check(
        len(request_id) <= MAX_REQUEST_ID_LENGTH,
        "request_id",
        f"must be at most {MAX_REQUEST_ID_LENGTH} characters",
    )
    v.check(request_id.isprintable(), "request_id", "must not contain control characters")
    v.raise_if_any()
    return NewOrder(customer_email, tuple(items), request_id)


def price_order(order_id: str, new: NewOrder, lines: list[OrderLine], now: dt.datetime) -> Order:
    """The PENDING order for the reserved lines; all lines must share one currency."""
    currencies = sorted({line.unit_price.currency for line in lines})
    if len(currencies) != 1:
        raise FailedPrecondition(
            "the products of one order must share one currency, got " + ", ".join(currencies),
            [
                PreconditionViolation("CURRENCY", f"products/{line.product_id}", line.unit_price.currency)
                for line in lines
            ],
            reason="MIXED_CURRENCIES",
        )
    total = Money(currencies[0], sum(line.unit_price.nanos * line.quantity for line in lines))
    return Order(order_id, new.customer_email, tuple(lines), OrderStatus.PENDING, total, now, now)
