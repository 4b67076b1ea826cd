"""Notification rules in plain Python: which order events become which email,
what it says, and how often a failed send is tried again."""

import datetime as dt
import enum
from dataclasses import dataclass

from meshkit.money import Money


class NotificationStatus(enum.Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Notification:
    notification_id: str
    order_id: str
    event_sequence: int
    recipient: str
    subject: str
    body: str
    status: NotificationStatus
    attempts: int
    message_id: str
    last_error: str
    create_time: dt.datetime
    update_time: dt.datetime
    send_time: dt.datetime | None
    trace_parent: str | None = None  # of the order change the notification is about


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class OrderEvent:
    """What the Notification service needs to know of an order event."""

    sequence: int
    order_id: str
    customer_email: str
    status: str  # PENDING, CONFIRMED, SHIPPED or CANCELLED: the order's status after the event
    created: bool  # the event is the order's creation
    lines: tuple[OrderLine, ...]
    total: Money


@dataclass(frozen=True)
class Email:
    recipient: str
    subject: str
    body: str
    message_id: str


# The sentence each event gets: created, then the status an order moved to.
_HEADLINES = {
    "CREATED": ("received", "Thank you! We have received your order {short} and reserved its items."),
    "CONFIRMED": ("confirmed", "Your order {short} is confirmed and will be packed soon."),
    "SHIPPED": ("shipped", "Your order {short} has been handed to the carrier."),
    "CANCELLED": ("cancelled", "Your order {short} has been cancelled; nothing will be charged."),
}
MESSAGE_ID_DOMAIN = "shopmesh"
# The longest address SMTP carries (RFC 5321's path limit): a longer one is no address.
MAX_ADDRESS_LENGTH = 254
MAX_ORDER_ID_LENGTH = 36  # order ids are UUIDs


class CannotRender(ValueError):
    """An order event no email is written for; its notification is FAILED, not sent."""


def short_id(order_id: str) -> str:
    return order_id.split("-")[0][:8]


def message_id(order_id: str, sequence: int) -> str:
    """Stable per event, so a resend after a crash is recognisably the same email."""
    return f"<{order_id}.{sequence}@{MESSAGE_ID_DOMAIN}>"


def render(event: OrderEvent) -> Email:
    """The event's email; CannotRender for an event that gets none."""
    headline = _HEADLINES.get("CREATED" if event.created else event.status)
    if headline is None:
        raise CannotRender(f"no email is written for an order moving to {event.status}")
    if not 0 < len(event.customer_email) <= MAX_ADDRESS_LENGTH:
        raise CannotRender(f"the customer's address has {len(event.customer_email)} characters")
    if not 0 < len(event.order_id) <= MAX_ORDER_ID_LENGTH:
        raise CannotRender(f"the order id has {len(event.order_id)} characters")
    verb, sentence = headline
    short = short_id(event.order_id)
    lines = [
        f"  {line.quantity} x {line.product_id} at {line.unit_price} = {line.unit_price * line.quantity}"
        for line in event.lines
    ]
    body = "\n".join(
        [
            "Hello,",
            "",
            sentence.format(short=short),
            "",
            f"Order {event.order_id}",
            *lines,
            f"  Total: {event.total}",
            "",
            "ShopMesh",
        ]
    )
    subject = f"Order {short} {verb}"
    return Email(event.customer_email, subject, body + "\n", message_id(event.order_id, event.sequence))


def unsendable(order_id: str, sequence: int, recipient: str) -> Email:
    """What is kept of an event no email could be written for: whom it concerned."""
    return Email(recipient, "", "", message_id(order_id, sequence))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off between attempts, then FAILED after max_attempts."""

    max_attempts: int = 10
    first_delay: float = 2.0
    max_delay: float = 300.0

    def delay_after(self, attempts: int) -> float | None:
        """Seconds to wait after `attempts` failed tries, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        return min(self.max_delay, self.first_delay * 2.0 ** (attempts - 1))
