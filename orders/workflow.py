"""What placing, moving and cancelling an order takes: the domain's rules, the
order database and the Inventory service, in the order that keeps them consistent."""

import asyncio
import logging
import weakref
from collections.abc import Callable

from meshkit.caller import Caller
from meshkit.database import utcnow
from meshkit.errors import AlreadyExists, DomainError, NotFound, Unavailable
from orders import domain
from orders.inventory_client import InventoryClient
from orders.storage import OrderStore, RequestConflict

log = logging.getLogger(__name__)


class OrderWorkflow:
    def __init__(self, store: OrderStore, inventory: InventoryClient, on_change: Callable[[], None]) -> None:
        self._store = store
        self._inventory = inventory
        # Told after every committed change, so open streams see it at once.
        self._on_change = on_change
        # Serialises cancel against other moves of the same order in this
        # process, so stock is never released for an order that shipped meanwhile.
        self._order_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def create(self, new: domain.NewOrder) -> domain.Order:
        if new.request_id:
            found = await self._store.find_by_request(new.request_id)
            if found is not None:
                return self._repeat(new, *found)
        order_id = new.new_order_id()
        # The order id is the reservation id: a repeat (by request_id, or by
        # Envoy retrying) reserves the same stock once.
        try:
            lines = await self._inventory.reserve(order_id, new.items)
        except Unavailable:
            # The reservation may have committed before the failure. With a
            # request_id the caller repeats the request and reuses it; without
            # one nobody can, so give it back (this also keeps a retry of it
            # that is still on its way from taking stock).
            if not new.request_id:
                await self._release_after_failure(order_id)
            raise
        try:
            order = domain.price_order(order_id, new, lines, utcnow())
            created = await self._store.create(order, new.request_id, new.fingerprint())
            self._on_change()
            return created
        except RequestConflict as conflict:
            return self._repeat(new, conflict.order, conflict.fingerprint)
        except BaseException:
            await self._release_after_failure(order_id)
            raise

    def _repeat(self, new: domain.NewOrder, order: domain.Order, fingerprint: str | None) -> domain.Order:
        if fingerprint != new.fingerprint():
            # Names no order: the first request may have been another customer's.
            raise AlreadyExists(
                "request",
                new.request_id,
                f"request_id {new.request_id!r} was already used for an order with another customer or other items",
            )
        return order

    async def _release_after_failure(self, order_id: str) -> None:
        """Gives back the stock of an order that could not be stored. One call,
        not a retry loop: if it fails too, the reservation stays and is logged."""
        try:
            await self._inventory.release(order_id)
        except DomainError as error:
            log.error("stock of unstored order left reserved", extra={"order_id": order_id, "error": str(error)})

    async def get(self, order_id: str, caller: Caller) -> domain.Order:
        return visible(await self._store.get(order_id), caller)

    async def move(self, order_id: str, target: domain.OrderStatus, caller: Caller) -> domain.Order:
        lock = self._order_locks.get(order_id)
        if lock is None:
            lock = self._order_locks[order_id] = asyncio.Lock()
        async with lock:
            if not caller.sees_everything:
                await self.get(order_id, caller)
            if target is domain.OrderStatus.CANCELLED:
                # Check first, release, then commit: if Inventory cannot be
                # reached nothing has changed and the caller can try again.
                current = await self._store.get(order_id)
                current.moved_to(target, utcnow())
                await self._inventory.release(order_id)
            moved = await self._store.move(order_id, target, utcnow())
            self._on_change()
            return moved


def visible(order: domain.Order, caller: Caller) -> domain.Order:
    """order, if caller may see it; else the very error a missing order gives, so that
    nobody learns whether someone else's order exists."""
    if not caller.owns(order.customer_email):
        raise NotFound("order", order.order_id)
    return order
