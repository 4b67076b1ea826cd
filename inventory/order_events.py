"""Keeps every reservation with its order. Inventory follows the Order service's event
stream through Envoy's mesh listener and holds, ships or gives back each order's
reservation as its status says; the cursor moves in the same transaction, so every
event counts once whatever crashes.

A reservation whose order has not appeared by its expire_time is settled by asking
the Order service for that order (GetOrder, through the mesh listener): the Order
service stores an order only before its reservation's expire_time, so once that time
(plus SETTLE_GRACE for a commit already under way and for clocks) has passed, a missing
order stays missing and its stock goes back.
"""

import datetime as dt
import logging

import grpc

from inventory.storage import InventoryStore
from meshkit import resume
from meshkit.database import utcnow
from meshkit.protoconv import enum_name
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

RESUME_PAUSE_SECONDS = 1.0
SETTLE_BATCH = 100


class OrderFollower:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        store: InventoryStore,
        settle_every: float,
        grace: dt.timedelta,
        resume_pause: float = RESUME_PAUSE_SECONDS,
    ) -> None:
        self._stub = orders_pb2_grpc.OrderServiceStub(channel)
        self._store = store
        self._settle_every = settle_every
        self._grace = grace
        self._resume_pause = resume_pause

    async def follow(self) -> None:
        await resume.follow("order event stream", self._store.cursor, self._open, self._apply, self._resume_pause)

    def _open(
        self, cursor: int
    ) -> grpc.aio.UnaryStreamCall[orders_pb2.StreamOrderEventsRequest, orders_pb2.OrderEvent]:
        # opens once the mesh listener can be reached (Envoy may start after this service)
        return self._stub.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=cursor), wait_for_ready=True
        )

    async def _apply(self, events: list[orders_pb2.OrderEvent]) -> None:
        given_back = await self._store.apply_order_events(
            [
                (event.sequence, event.order.order_id, enum_name(orders_pb2.OrderStatus, event.order.status))
                for event in events
            ]
        )
        for reservation in given_back:
            # Cannot happen while the Order service keeps to expire_time; the books check
            # (python -m inventory.reconcile) shows it until someone restocks.
            log.error(
                "order lives on after its reservation was given back", extra={"order_id": reservation.reservation_id}
            )

    async def settle_expired(self) -> None:
        await resume.every("settling expired reservations", self._settle_every, self.settle_once)

    async def settle_once(self) -> int:
        """Settles every reservation past its expire_time and grace; returns how many."""
        due = await self._store.expired(utcnow() - self._grace, SETTLE_BATCH)
        for reservation_id in due:
            try:
                order = await self._stub.GetOrder(orders_pb2.GetOrderRequest(order_id=reservation_id))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                await self._store.settle(reservation_id, None, self._grace)
                log.info("stock of an order that never came given back", extra={"reservation_id": reservation_id})
            else:
                await self._store.settle(reservation_id, enum_name(orders_pb2.OrderStatus, order.status), self._grace)
        return len(due)
