"""What the order workflow needs of the order database and of the Inventory service:
only the methods it calls. The service passes orders.storage.OrderStore and
orders.inventory_client.InventoryClient; unit tests pass in-memory fakes."""

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from orders import domain
from orders.storage import StoredOrder


@dataclass(frozen=True)
class Reserved:
    """Stock taken for an order: the priced lines, and until when the order may be stored."""

    lines: list[domain.OrderLine]
    expire_time: dt.datetime


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
