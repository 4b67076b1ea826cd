"""The Order service's streams (orders.streams) over a real change feed and an order
database in memory, without gRPC: the backlog then live events with no repeat and no
hole, a gap or a lag sent back to the database, the feed's closing, a watch's end,
ownership and slot."""

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from google.protobuf.message import Message

from meshkit.caller import Caller
from meshkit.errors import NotFound, ResourceExhausted, Unavailable
from meshkit.money import Money
from orders import domain
from orders.feed import ChangeFeed
from orders.protos import event_to_proto, order_to_proto
from orders.streams import OrderStreams
from orders.watches import OpenWatches, WatchLimits

Status = domain.OrderStatus
TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ANN = Caller(via_edge=True, subject="ann", email="ann@example.com", roles=frozenset({"customer"}))
BOB = Caller(via_edge=True, subject="bob", email="bob@example.com", roles=frozenset({"customer"}))
PAGE = 2  # backlog page of these tests: a backlog of a few events takes several pages


def event(sequence: int, status: Status = Status.PENDING, order_id: str = "O-1") -> domain.OrderEvent:
    order = domain.Order(order_id, "ann@example.com", (), status, Money("EUR", 0), TIME, TIME)
    kind = domain.EventType.CREATED if status is Status.PENDING else domain.EventType.STATUS_CHANGED
    return domain.OrderEvent(sequence, kind, order, None, TIME)


class OrderDatabase:
    """The order events the feed and the streams read, in memory. An event added as
    uncommitted is invisible until commit(): how a transaction that took its sequence
    first may commit after a later one."""

    def __init__(self) -> None:
        self._events: dict[int, domain.OrderEvent] = {}
        self._uncommitted: set[int] = set()
        self.event_reads: list[tuple[int, int]] = []  # (after sequence, limit) of each events_after
        self.order_reads = 0
        self.feed_started = asyncio.Event()
        # run once by the next read, after it has taken its snapshot
        self.during_next_read: Callable[[], Awaitable[None]] | None = None

    def add(self, *events: domain.OrderEvent, committed: bool = True) -> None:
        for added in events:
            self._events[added.sequence] = added
            if not committed:
                self._uncommitted.add(added.sequence)

    def commit(self, sequence: int) -> None:
        self._uncommitted.discard(sequence)

    def _visible(self) -> list[domain.OrderEvent]:
        return [self._events[s] for s in sorted(self._events) if s not in self._uncommitted]

    async def last_sequence(self) -> int:
        self.feed_started.set()
        return max((e.sequence for e in self._visible()), default=0)

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]:
        self.event_reads.append((sequence, limit))
        found = [e for e in self._visible() if e.sequence > sequence][:limit]
        await self._meanwhile()
        return found

    async def get_with_sequence(self, order_id: str) -> tuple[domain.Order, int]:
        self.order_reads += 1
        mine = [e for e in self._visible() if e.order.order_id == order_id]
        if not mine:
            raise NotFound("order", order_id)
        await self._meanwhile()
        return mine[-1].order, mine[-1].sequence

    async def _meanwhile(self) -> None:
        during, self.during_next_read = self.during_next_read, None
        if during is not None:
            await during()


class Mesh:
    """A running change feed over an OrderDatabase and the streams reading both."""

    def __init__(self, db: OrderDatabase, feed: ChangeFeed, watches: OpenWatches) -> None:
        self.db, self.feed, self.watches = db, feed, watches
        self.streams = OrderStreams(db, feed, watches, backlog_page=PAGE)

    def publish(self, *events: domain.OrderEvent) -> None:
        """Commits events, as a workflow of this process does, and tells the feed."""
        self.db.add(*events)
        self.feed.wake()


@asynccontextmanager
async def running(db: OrderDatabase, **limits: int) -> AsyncIterator[Mesh]:
    feed = ChangeFeed(db, poll_seconds=3600, **limits)  # it looks only when woken
    task = asyncio.create_task(feed.run())
    await db.feed_started.wait()
    try:
        yield Mesh(db, feed, OpenWatches(WatchLimits(per_client=1, total=10)))
    finally:
        feed.close()
        task.cancel()


async def next_of(stream: AsyncGenerator[Message, None]) -> Message:
    return await asyncio.wait_for(anext(stream), 2)


async def handed_out(feed: ChangeFeed, sequence: int) -> None:
    """Returns once the feed has handed event sequence to every subscriber of all orders."""
    with feed.subscribe() as probe:
        while True:
            got = await asyncio.wait_for(probe.next(), 2)
            if isinstance(got, domain.OrderEvent) and got.sequence == sequence:
                return


@pytest.fixture
def db() -> OrderDatabase:
    return OrderDatabase()


async def test_the_backlog_comes_page_by_page_then_live_events_with_none_repeated(db):
    db.add(event(1), event(2), event(3))
    async with running(db) as mesh:
        db.add(event(4), event(5))  # committed, but not yet seen by the feed
        stream = mesh.streams.order_events(0)
        backlog = [await next_of(stream) for _ in range(5)]
        assert backlog == [event_to_proto(event(s)) for s in range(1, 6)]
        assert [after for after, limit in db.event_reads if limit == PAGE] == [0, 2, 4]
        # the feed now hands out 4 and 5 too: the stream has them already
        mesh.publish(event(6))
        mesh.publish(event(7))
        assert [(await next_of(stream)).sequence for _ in range(2)] == [6, 7]
        await stream.aclose()


async def test_an_event_committed_while_the_backlog_is_read_comes_live(db):
    db.add(event(1))
    async with running(db) as mesh:

        async def commit_meanwhile() -> None:
            mesh.publish(event(2))
            await handed_out(mesh.feed, 2)

        db.during_next_read = commit_meanwhile
        stream = mesh.streams.order_events(0)
        assert [(await next_of(stream)).sequence for _ in range(2)] == [1, 2]
        assert [after for after, limit in db.event_reads if limit == PAGE] == [0]  # 2 came from the feed
        await stream.aclose()


async def test_a_stream_starts_after_the_sequence_it_is_given(db):
    db.add(*(event(s) for s in range(1, 5)))
    async with running(db) as mesh:
        stream = mesh.streams.order_events(2)
        assert [(await next_of(stream)).sequence for _ in range(2)] == [3, 4]
        mesh.publish(event(5))
        assert (await next_of(stream)).sequence == 5
        await stream.aclose()


async def test_an_event_that_skips_one_sends_the_stream_back_to_the_database(db):
    db.add(event(1))
    async with running(db) as mesh:
        stream = mesh.streams.order_events(0)
        assert (await next_of(stream)).sequence == 1
        # 2 took its sequence first but commits after 3: the feed sees 3 alone
        db.add(event(2), committed=False)
        mesh.publish(event(3))
        await handed_out(mesh.feed, 3)
        db.commit(2)
        assert [(await next_of(stream)).sequence for _ in range(2)] == [2, 3]
        assert db.event_reads[-1] == (1, PAGE)
        await stream.aclose()


async def test_a_stream_that_lags_behind_the_feed_reads_the_rest_from_the_database(db):
    db.add(event(1))
    async with running(db, queue_limit=3) as mesh:
        stream = mesh.streams.order_events(0)
        assert (await next_of(stream)).sequence == 1
        mesh.publish(*(event(s) for s in range(2, 9)))  # 7 events for a queue of 3
        await handed_out(mesh.feed, 2)
        reads_before = len(db.event_reads)
        assert [(await next_of(stream)).sequence for _ in range(7)] == [2, 3, 4, 5, 6, 7, 8]
        # 2, 3, 4 from the queue; then LAGGED, and the rest from the database
        assert [after for after, limit in db.event_reads[reads_before:] if limit == PAGE] == [4, 6]
        await stream.aclose()


async def test_a_live_event_is_one_message_for_every_stream_that_sends_it(db):
    db.add(event(1))
    async with running(db) as mesh:
        first, second = mesh.streams.order_events(1), mesh.streams.order_events(1)
        # both have read the (empty) backlog and wait for live events
        reading = [asyncio.ensure_future(next_of(first)), asyncio.ensure_future(next_of(second))]
        await asyncio.sleep(0.05)
        mesh.publish(event(2, Status.CONFIRMED))
        one, other = await asyncio.gather(*reading)
        assert one is other and one == event_to_proto(event(2, Status.CONFIRMED))
        await first.aclose()
        await second.aclose()


async def test_the_feed_closing_ends_a_stream_with_unavailable(db):
    db.add(event(1))
    async with running(db) as mesh:
        stream = mesh.streams.order_events(0)
        assert (await next_of(stream)).sequence == 1
        mesh.feed.close()
        with pytest.raises(Unavailable) as raised:
            await next_of(stream)
        assert raised.value.message == "the Order service is restarting; resume from your last sequence"
        # a stream opened while the server stops still gets the backlog first
        late = mesh.streams.order_events(0)
        assert (await next_of(late)).sequence == 1
        with pytest.raises(Unavailable):
            await next_of(late)


async def test_a_watch_sends_the_order_then_each_change_and_ends_at_a_terminal_status(db):
    db.add(event(1))
    async with running(db) as mesh:
        watch = mesh.streams.order_changes("O-1", ANN, "subject:ann")
        assert await next_of(watch) == order_to_proto(event(1).order)
        assert mesh.watches.open == 1
        mesh.publish(event(2, Status.CONFIRMED))
        assert await next_of(watch) == order_to_proto(event(2, Status.CONFIRMED).order)
        mesh.publish(event(3, Status.SHIPPED))
        assert await next_of(watch) == order_to_proto(event(3, Status.SHIPPED).order)
        with pytest.raises(StopAsyncIteration):
            await next_of(watch)
        assert mesh.watches.open == 0


async def test_watching_a_finished_order_sends_it_once(db):
    db.add(event(1), event(2, Status.CANCELLED))
    async with running(db) as mesh:
        assert [order async for order in mesh.streams.order_changes("O-1", ANN, None)] == [
            order_to_proto(event(2, Status.CANCELLED).order)
        ]
        assert mesh.watches.open == 0


async def test_a_change_committed_while_a_watch_reads_the_order_is_sent(db):
    db.add(event(1))
    async with running(db) as mesh:

        async def change_meanwhile() -> None:
            mesh.publish(event(2, Status.CONFIRMED))
            await handed_out(mesh.feed, 2)

        db.during_next_read = change_meanwhile
        watch = mesh.streams.order_changes("O-1", ANN, None)
        assert await next_of(watch) == order_to_proto(event(1).order)  # as read, before the change
        assert await next_of(watch) == order_to_proto(event(2, Status.CONFIRMED).order)
        await watch.aclose()


async def test_a_change_the_first_message_showed_is_not_sent_again(db):
    db.add(event(1))
    async with running(db) as mesh:
        db.add(event(2, Status.CONFIRMED))  # committed; the feed has not handed it out yet
        watch = mesh.streams.order_changes("O-1", ANN, None)
        assert await next_of(watch) == order_to_proto(event(2, Status.CONFIRMED).order)
        mesh.feed.wake()
        await handed_out(mesh.feed, 2)
        mesh.publish(event(3, Status.SHIPPED))
        assert await next_of(watch) == order_to_proto(event(3, Status.SHIPPED).order)
        with pytest.raises(StopAsyncIteration):
            await next_of(watch)


async def test_a_watch_that_lags_reads_the_order_again(db):
    db.add(event(1))
    async with running(db, order_queue_limit=1) as mesh:
        watch = mesh.streams.order_changes("O-1", ANN, None)
        await next_of(watch)
        mesh.publish(event(2, Status.CONFIRMED), event(3, Status.SHIPPED))  # 2 changes for a queue of 1
        await handed_out(mesh.feed, 3)
        assert [order async for order in watch] == [
            order_to_proto(event(2, Status.CONFIRMED).order),
            order_to_proto(event(3, Status.SHIPPED).order),  # read again after LAGGED
        ]
        assert db.order_reads == 2


async def test_a_change_is_one_message_for_all_its_watchers(db):
    db.add(event(1))
    async with running(db) as mesh:
        watches = [mesh.streams.order_changes("O-1", ANN, None) for _ in range(2)]
        for watch in watches:
            await next_of(watch)
        mesh.publish(event(2, Status.CONFIRMED))
        one, other = [await next_of(watch) for watch in watches]
        assert one is other and one == order_to_proto(event(2, Status.CONFIRMED).order)
        for watch in watches:
            await watch.aclose()
        assert mesh.watches.open == 0


async def test_the_feed_closing_ends_a_watch_with_unavailable_and_frees_its_slot(db):
    db.add(event(1))
    async with running(db) as mesh:
        watch = mesh.streams.order_changes("O-1", ANN, "subject:ann")
        await next_of(watch)
        mesh.feed.close()
        with pytest.raises(Unavailable) as raised:
            await next_of(watch)
        assert raised.value.message == "the Order service is restarting; watch the order again"
        assert mesh.watches.open == 0


async def test_someone_elses_order_is_not_found_before_any_message(db):
    db.add(event(1))
    async with running(db) as mesh:
        with pytest.raises(NotFound) as raised:
            await next_of(mesh.streams.order_changes("O-1", BOB, "subject:bob"))
        assert raised.value.message == "order not found: O-1"
        assert mesh.watches.open == 0


async def test_a_watch_over_the_callers_cap_is_refused_before_any_message(db):
    db.add(event(1))
    async with running(db) as mesh:  # one watch per caller
        first = mesh.streams.order_changes("O-1", ANN, "subject:ann")
        await next_of(first)
        with pytest.raises(ResourceExhausted):
            await next_of(mesh.streams.order_changes("O-1", ANN, "subject:ann"))
        assert db.order_reads == 1
        await first.aclose()
        assert mesh.watches.open == 0
