"""A test-only switch that makes Inventory fail some ReserveStock calls, to show
that Envoy's retries (not Python code) ride out a flaky service.

Off unless SHOPMESH_FAULT_RESERVE_UNAVAILABLE (a fraction from 0 to 1) or
SHOPMESH_FAULT_RESERVE_DELAY_SECONDS is set; never set outside tests.
"""

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Mapping

import grpc

from inventory.api import InventoryServicer
from inventory.storage import InventoryStore
from meshkit import config
from shopmesh.inventory.v1 import inventory_pb2

log = logging.getLogger(__name__)


class FaultyInventoryServicer(InventoryServicer):
    """Fails a fraction of ReserveStock calls with UNAVAILABLE, half of them
    before the reservation and half after it committed; optionally slows each call."""

    def __init__(
        self, store: InventoryStore, reservation_wait: dt.timedelta, failure_fraction: float, delay_seconds: float
    ) -> None:
        super().__init__(store, reservation_wait)
        self._fraction = failure_fraction
        self._delay = delay_seconds
        self._random = random.Random()

    async def ReserveStock(
        self,
        request: inventory_pb2.ReserveStockRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.ReserveStockRequest, inventory_pb2.Reservation],
    ) -> inventory_pb2.Reservation:
        if self._delay:
            await asyncio.sleep(self._delay)
        roll = self._random.random()
        if roll < self._fraction / 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault before the reservation")
        reservation = await super().ReserveStock(request, context)
        if roll < self._fraction:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault after the reservation committed")
        return reservation


def servicer_from_env(
    env: Mapping[str, str], store: InventoryStore, reservation_wait: dt.timedelta
) -> InventoryServicer:
    try:
        fraction = float(config.get(env, "SHOPMESH_FAULT_RESERVE_UNAVAILABLE", "0"))
        delay = float(config.get(env, "SHOPMESH_FAULT_RESERVE_DELAY_SECONDS", "0"))
    except ValueError:
        fraction = delay = -1.0
    if not (0 <= fraction <= 1) or delay < 0:
        raise config.ConfigError("SHOPMESH_FAULT_RESERVE_* must be a fraction from 0 to 1 and a delay >= 0")
    if not fraction and not delay:
        return InventoryServicer(store, reservation_wait)
    log.warning("fault injection is on", extra={"failure_fraction": fraction, "delay_seconds": delay})
    return FaultyInventoryServicer(store, reservation_wait, fraction, delay)
