"""What placing, moving and cancelling an order takes: the domain's rules, the
order database and the Inventory service, in the order that keeps them consistent."""

from collections.abc import Callable

from meshkit.caller import Caller
from meshkit.database import utcnow
from meshkit.errors import AlreadyExists, NotFound
from orders import domain
from orders.ports import Inventory, OrderStore, RequestConflict


class OrderWorkflow:
    """Creates, reads and moves orders through an order store and Inventory (orders.ports)."""

    def __init__(self, store: OrderStore, inventory: Inventory, on_change: Callable[[], None]) -> None:
        self._store = store
        self._inventory = inventory
        # Told after every committed change, so open streams see it at once.
        self._on_change = on_change

    async def create(self, new: domain.NewOrder) -> domain.Order:
        """Reserves the stock of a new order and stores it as PENDING. A repeat of a
        request_id returns the order of the first request, or AlreadyExists if that
        request was another customer's or asked for other items."""
        if new.request_id:
            found = await self._store.find_by_request(new.request_id)
            if found is not None:
                return self._repeat(new, *found)
        # The order id is the reservation id: a repeat (by request_id, or by Envoy
        # retrying) reserves the same stock once, and Inventory finds the order of a
        # reservation in the order events.
        order_id = new.new_order_id()
        reserved = await self._inventory.reserve(order_id, new.items)
        order = domain.price_order(order_id, new, reserved.lines, utcnow())
        # Nothing here gives the stock back if storing fails or this call is cancelled
        # half-way: the store may have committed all the same. Inventory holds the stock
        # once the order's event arrives, and gives it back at expire_time if it never
        # does; storing refuses to commit after expire_time, so both cannot happen.
        try:
            created = await self._store.create(order, new.request_id, new.fingerprint(), reserved.expire_time)
        except RequestConflict as conflict:
            return self._repeat(new, conflict.order, conflict.fingerprint)
        self._on_change()
        return created

    def _repeat(self, new: domain.NewOrder, order: domain.Order, fingerprint: str | None) -> domain.Order:
        """order, stored for new's request_id by a request with fingerprint, if new repeats that request."""
        if fingerprint != new.fingerprint():
            # Names no order: the first request may have been another customer's.
            raise AlreadyExists(
                "request",
                new.request_id,
                f"request_id {new.request_id!r} was already used for an order with another customer or other items",
            )
        return order

    async def get(self, order_id: str, caller: Caller) -> bytes:
        """The order's Order message, in wire form, if caller may see it."""
        stored = await self._store.stored(order_id)
        _check_owner(order_id, stored.customer_email, caller)
        return stored.message

    async def move(self, order_id: str, target: domain.OrderStatus, caller: Caller) -> domain.Order:
        """Moves an order in one transaction. A cancelled order's stock comes back from
        its event (Inventory follows them), so a cancel needs no other service, and the
        database's row lock decides between a cancel and a ship on any replica."""
        if not caller.sees_everything:
            await self.get(order_id, caller)
        moved = await self._store.move(order_id, target, utcnow())
        self._on_change()
        return moved


def visible(order: domain.Order, caller: Caller) -> domain.Order:
    """order, if caller may see it (_check_owner)."""
    _check_owner(order.order_id, order.customer_email, caller)
    return order


def _check_owner(order_id: str, customer_email: str, caller: Caller) -> None:
    """Nothing if caller may see the order of customer_email; else the very error a
    missing order gives, so that nobody learns whether someone else's order exists."""
    if not caller.owns(customer_email):
        raise NotFound("order", order_id)
