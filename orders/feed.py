"""The change feed: one task per Order process reads new order events from the
database once and fans them out to every open stream (WatchOrder,
StreamOrderEvents). A stream costs a queue, not a thread or a polling loop.

Events committed by this process wake the feed at once; events committed by
another process sharing the database are found by a light poll.
"""

import asyncio
import logging
from collections import defaultdict
from contextlib import contextmanager

from opentelemetry.instrumentation.utils import suppress_instrumentation

from orders import domain
from orders.storage import OrderStore

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


class Subscription:
    def __init__(self, order_id: str | None) -> None:
        self.order_id = order_id
        self._queue: asyncio.Queue = asyncio.Queue()
        self._limit = QUEUE_LIMIT if order_id is None else ORDER_QUEUE_LIMIT
        self._lagging = False

    def deliver(self, item) -> None:
        if item is None:  # the feed closed: this must arrive, lagging or not
            self._queue.put_nowait(None)
            return
        if self._lagging:
            return
        if self._queue.qsize() >= self._limit:
            self._lagging = True
            item = LAGGED
        self._queue.put_nowait(item)

    async def next(self) -> domain.OrderEvent | Lagged | None:
        """The next event, LAGGED, or None once the feed has closed."""
        item = await self._queue.get()
        if item is LAGGED:
            self._lagging = False
        return item


class ChangeFeed:
    def __init__(self, store: OrderStore, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._everything: set[Subscription] = set()
        self._by_order: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._last: int | None = None
        self._closed = False

    def wake(self) -> None:
        """Something committed here: look now instead of at the next poll."""
        self._wake.set()

    @contextmanager
    def subscribe(self, order_id: str | None = None):
        """Events of one order, or of every order when order_id is None."""
        subscription = Subscription(order_id)
        if self._closed:
            subscription.deliver(None)
        group = self._everything if order_id is None else self._by_order[order_id]
        group.add(subscription)
        try:
            yield subscription
        finally:
            group.discard(subscription)
            if order_id is not None and not group:
                self._by_order.pop(order_id, None)

    @property
    def subscribers(self) -> int:
        return len(self._everything) + sum(len(group) for group in self._by_order.values())

    def close(self) -> None:
        """Ends every stream (the server is stopping)."""
        self._closed = True
        for subscription in [*self._everything, *(s for g in self._by_order.values() for s in g)]:
            subscription.deliver(None)

    async def run(self) -> None:
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
            except Exception:
                log.exception("reading new order events failed; trying again at the next poll")

    async def _publish_new(self) -> None:
        while True:
            events = await self._store.events_after(self._last, BATCH_SIZE)
            for event in events:
                for subscription in self._everything:
                    subscription.deliver(event)
                watchers = list(self._by_order.get(event.order.order_id, ()))
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
