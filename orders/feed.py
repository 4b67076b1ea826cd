"""The change feed: one task per Order process reads new order events from the
database once and fans them out to every open stream (WatchOrder,
StreamOrderEvents). A stream costs a queue, not a thread or a polling loop.

Events committed by this process wake the feed at once; events committed by
another process sharing the database are found by a light poll.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from opentelemetry.instrumentation.utils import suppress_instrumentation

from orders import domain

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
BATCH_SIZE = 500
# A subscriber that falls this far behind is told to read the database itself.
QUEUE_LIMIT = 10_000
# The same for a watcher of one order: an order has a few events in its whole life, so
# this only bounds what each of thousands of open watches may hold.
ORDER_QUEUE_LIMIT = 64
# Watchers of one order woken per pass of the event loop (~100 µs of work each).
FAN_OUT_STEP = 500


class Lagged:
    """Marker: events were dropped for this subscriber; re-read from the database."""


LAGGED = Lagged()


class EventLog(Protocol):
    """What the feed reads from the order database (orders.storage.OrderStore)."""

    async def last_sequence(self) -> int: ...

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]: ...


class Subscription:
    """One stream's queue of events from the feed, holding at most limit of them."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[domain.OrderEvent | Lagged | None] = asyncio.Queue()
        self._limit = limit
        self._lagging = False

    def deliver(self, item: domain.OrderEvent | None) -> None:
        """Queues an event, or None: the feed closed. Past the limit, queues LAGGED once and
        drops what follows until the subscriber has taken it."""
        if item is None:  # the feed closed: this must arrive, lagging or not
            self._queue.put_nowait(None)
            return
        if self._lagging:
            return
        if self._queue.qsize() >= self._limit:
            self._lagging = True
            self._queue.put_nowait(LAGGED)
            return
        self._queue.put_nowait(item)

    async def next(self) -> domain.OrderEvent | Lagged | None:
        """The next event, LAGGED, or None once the feed has closed."""
        item = await self._queue.get()
        if item is LAGGED:
            self._lagging = False
        return item


class ChangeFeed:
    """Reads each new order event once and hands it to every subscription that wants it."""

    def __init__(
        self,
        store: EventLog,
        poll_seconds: float = POLL_SECONDS,
        queue_limit: int = QUEUE_LIMIT,
        order_queue_limit: int = ORDER_QUEUE_LIMIT,
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._queue_limit = queue_limit
        self._order_queue_limit = order_queue_limit
        self._wake = asyncio.Event()
        self._subscribers_of_all_orders: set[Subscription] = set()
        self._subscribers_by_order: defaultdict[str, set[Subscription]] = defaultdict(set)
        # the last event handed out; read from the database when run() starts
        self._last = 0
        self._closed = False

    def wake(self) -> None:
        """Something committed here: look now instead of at the next poll."""
        self._wake.set()

    @contextmanager
    def subscribe(self, order_id: str | None = None) -> Iterator[Subscription]:
        """Events of one order, or of every order when order_id is None."""
        if order_id is None:
            subscription, group = Subscription(self._queue_limit), self._subscribers_of_all_orders
        else:
            subscription, group = Subscription(self._order_queue_limit), self._subscribers_by_order[order_id]
        if self._closed:
            subscription.deliver(None)
        group.add(subscription)
        try:
            yield subscription
        finally:
            group.discard(subscription)
            if order_id is not None and not group:
                self._subscribers_by_order.pop(order_id, None)

    def close(self) -> None:
        """Ends every stream (the server is stopping)."""
        self._closed = True
        for subscription in [
            *self._subscribers_of_all_orders,
            *(s for group in self._subscribers_by_order.values() for s in group),
        ]:
            subscription.deliver(None)

    async def run(self) -> None:
        """Hands out new events until close(), looking when woken or every poll_seconds."""
        self._last = await self._store.last_sequence()
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                # Polls belong to no call: keep them out of the traces.
                with suppress_instrumentation():
                    await self._publish_new()
            except Exception:  # a database hiccup must not end the feed
                log.exception("reading new order events failed; trying again at the next poll")

    async def _publish_new(self) -> None:
        while True:
            events = await self._store.events_after(self._last, BATCH_SIZE)
            for event in events:
                for subscription in self._subscribers_of_all_orders:
                    subscription.deliver(event)
                watchers = list(self._subscribers_by_order.get(event.order.order_id, ()))
                for start in range(0, len(watchers), FAN_OUT_STEP):
                    if start:
                        # Each watcher woken sends the change before the loop polls again:
                        # in steps, so that health checks and other calls are answered between.
                        await asyncio.sleep(0)
                    for subscription in watchers[start : start + FAN_OUT_STEP]:
                        subscription.deliver(event)
                self._last = event.sequence
            if len(events) < BATCH_SIZE:
                return
