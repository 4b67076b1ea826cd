"""What the order workflow needs of the order database and of the Inventory service:
only the methods it calls. The service passes orders.storage.OrderStore and
orders.inventory_client.InventoryClient; unit tests pass in-memory fakes."""

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from meshkit.errors import Unavailable
from orders import domain


@dataclass(frozen=True)
class Reserved:
    """Stock taken for an order: the priced lines, and until when the order may be stored."""

    lines: list[domain.OrderLine]
    expire_time: dt.datetime


@dataclass(frozen=True)
class StoredOrder:
    """An order as GetOrder answers it: its owner, and its Order message in wire form."""

    customer_email: str
    message: bytes


class ReservationExpired(Unavailable):
    """The order store's refusal to commit an order after its reservation's expire_time."""

    def __init__(self) -> None:
        super().__init__(
            "the order could not be stored before its stock reservation ran out; send the same request again",
            reason="RESERVATION_EXPIRED",
        )


class RequestConflict(Exception):
    """The order store's answer when another order already carries this request_id."""

    def __init__(self, order: domain.Order, fingerprint: str | None) -> None:
        self.order = order
        self.fingerprint = fingerprint


class Inventory(Protocol):
    """Takes stock for an order."""

    async def reserve(self, reservation_id: str, items: tuple[domain.ItemRequest, ...]) -> Reserved:
        """Reserves all items or none, priced by Inventory; the same reservation_id again
        returns the same reservation and takes nothing more."""
        ...


class OrderStore(Protocol):
    """The orders and their events; every method is one transaction."""

    async def find_by_request(self, request_id: str) -> tuple[domain.Order, str | None] | None:
        """The order stored for request_id and that request's fingerprint, or None."""
        ...

    async def create(
        self, order: domain.Order, request_id: str, fingerprint: str, deadline: dt.datetime
    ) -> domain.Order:
        """Stores a new order and its CREATED event before deadline (ReservationExpired
        after it); RequestConflict if another order already carries request_id."""
        ...

    async def stored(self, order_id: str) -> StoredOrder:
        """The order's owner and its Order message (NotFound if there is none)."""
        ...

    async def move(self, order_id: str, target: domain.OrderStatus, now: dt.datetime) -> domain.Order:
        """Moves an order to target and records the event (NotFound, FailedPrecondition)."""
        ...
