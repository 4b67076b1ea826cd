"""A test-only switch that crashes the Order service at the worst moment for the stock
books: after Inventory reserved an order's stock, before the order is stored. It
shows that Inventory gives such stock back by itself.

Off unless SHOPMESH_FAULT_CRASH_AFTER_RESERVE names a product id; only orders of that
product crash the process (SIGKILL: no shutdown code runs). Never set outside tests.
"""

import logging
import os
import signal
from collections.abc import Mapping

from meshkit import config
from orders import domain
from orders.ports import Inventory, Reserved

log = logging.getLogger(__name__)


class CrashAfterReserve:
    """An Inventory that kills its own process once it has reserved product_id."""

    def __init__(self, inventory: Inventory, product_id: str) -> None:
        self._inventory = inventory
        self._product_id = product_id

    async def reserve(self, reservation_id: str, items: tuple[domain.ItemRequest, ...]) -> Reserved:
        reserved = await self._inventory.reserve(reservation_id, items)
        if any(item.product_id == self._product_id for item in items):
            os.kill(os.getpid(), signal.SIGKILL)
        return reserved


def inventory_from_env(env: Mapping[str, str], inventory: Inventory) -> Inventory:
    """inventory itself, or wrapped to crash when SHOPMESH_FAULT_CRASH_AFTER_RESERVE asks for it."""
    product_id = config.get(env, "SHOPMESH_FAULT_CRASH_AFTER_RESERVE", "")
    if not product_id:
        return inventory
    log.warning("fault injection is on: crashing after reserving one product", extra={"product_id": product_id})
    return CrashAfterReserve(inventory, product_id)
