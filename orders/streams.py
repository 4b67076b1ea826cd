"""The Order service's two streams, read from the database and the change feed:
every order event after a sequence (StreamOrderEvents), and the changes of one order
(WatchOrder). Both subscribe to the feed before they read the database, so that no
event committed in between is missed, and read the database again whenever the feed
cannot vouch for what it hands them (a gap in the sequence, or LAGGED)."""

from collections.abc import AsyncGenerator
from typing import Protocol

from meshkit.caller import Caller
from meshkit.errors import Unavailable
from orders import domain
from orders.feed import ChangeFeed, Lagged
from orders.protos import RecentMessages, event_to_proto, order_to_proto
from orders.watches import OpenWatches
from orders.workflow import visible
from shopmesh.orders.v1 import orders_pb2

# Events read per query while a stream catches up with the stored backlog.
BACKLOG_PAGE = 500


class OrderReads(Protocol):
    """What the streams read from the order database (orders.storage.OrderStore)."""

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]: ...

    async def get_with_sequence(self, order_id: str) -> tuple[domain.Order, int]: ...


def _order_of(event: domain.OrderEvent) -> orders_pb2.Order:
    return order_to_proto(event.order)


class OrderStreams:
    """The streams of one Order process. The message of a live event is built once for
    every stream that sends it (RecentMessages), however many follow or watch."""

    def __init__(
        self, store: OrderReads, feed: ChangeFeed, watches: OpenWatches, backlog_page: int = BACKLOG_PAGE
    ) -> None:
        self._store = store
        self._feed = feed
        self._watches = watches
        self._backlog_page = backlog_page
        self._changed_orders = RecentMessages(_order_of)
        self._events = RecentMessages(event_to_proto)

    async def order_events(self, after_sequence: int) -> AsyncGenerator[orders_pb2.OrderEvent, None]:
        """Every event with a sequence greater than after_sequence, in order, none twice and
        none missing: the stored backlog first, then live events, until the feed closes
        (Unavailable: the caller resumes from the last sequence it got)."""
        cursor = after_sequence
        with self._feed.subscribe() as subscription:
            while True:
                # The stored backlog, page by page, until caught up ...
                while True:
                    events = await self._store.events_after(cursor, self._backlog_page)
                    for event in events:
                        yield event_to_proto(event)
                        cursor = event.sequence
                    if len(events) < self._backlog_page:
                        break
                # ... then live events from the feed, until it says we lag behind or skips
                # one (committed out of order): the database has them.
                while True:
                    live = await subscription.next()
                    if live is None:
                        raise Unavailable("the Order service is restarting; resume from your last sequence")
                    if isinstance(live, Lagged) or live.sequence > cursor + 1:
                        break
                    # (an event at or below the cursor came with the backlog already)
                    if live.sequence == cursor + 1:
                        yield self._events.of(live)
                        cursor = live.sequence

    async def order_changes(
        self, order_id: str, caller: Caller, watcher: str | None
    ) -> AsyncGenerator[orders_pb2.Order, None]:
        """The order as it is now, if caller may see it (else NotFound, as for a missing
        order), then the order after each change, until a terminal status ends the stream.
        The watch holds a slot counted against watcher (orders.watches) while it is open."""
        # (StreamOrderEvents, the services' own stream, takes no slot: no crowd of watchers can starve it)
        with self._watches.slot(watcher), self._feed.subscribe(order_id) as subscription:
            # Subscribed before reading: no change can fall between the two.
            order, seen = await self._store.get_with_sequence(order_id)
            yield order_to_proto(visible(order, caller))
            while not order.status.terminal:
                live = await subscription.next()
                if live is None:
                    raise Unavailable("the Order service is restarting; watch the order again")
                if isinstance(live, Lagged):
                    order, seen = await self._store.get_with_sequence(order_id)
                    yield order_to_proto(order)
                elif live.sequence > seen:
                    order, seen = live.order, live.sequence
                    yield self._changed_orders.of(live)
