"""meshkit.resume: which errors background work outlives, and that it goes on after them
from where it stopped; anything else ends it."""

import asyncio
import logging
import sqlite3

import grpc
import pytest
from sqlalchemy import exc

from meshkit import resume
from meshkit.database import is_outage
from meshkit.server import KEEPALIVE_ACCEPTED


def locked() -> exc.OperationalError:
    return exc.OperationalError("UPDATE stream_cursors SET ...", {}, sqlite3.OperationalError("database is locked"))


def test_database_outages_are_transient_and_broken_rules_are_not():
    assert is_outage(locked())
    assert is_outage(exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")))
    assert is_outage(exc.DBAPIError("SELECT 1", {}, Exception("server closed"), connection_invalidated=True))
    assert not is_outage(exc.IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE constraint failed")))
    assert not is_outage(exc.ProgrammingError("SELECT nope", {}, Exception("column does not exist")))
    assert not is_outage(KeyError("PENDING"))


def test_a_failed_call_is_transient_and_every_reason_is_one_short_line():
    call = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "reset")
    assert resume.is_transient(call) and resume.is_transient(locked())
    assert resume.reason(call) == "UNAVAILABLE: reset"
    assert resume.reason(locked()) == "OperationalError: database is locked"


async def test_keep_going_outlives_outages_and_stops_at_a_bug(caplog):
    runs = []

    async def work():
        runs.append(len(runs))
        if len(runs) <= 2:
            raise locked()
        if len(runs) == 4:
            raise KeyError("a bug")

    with caplog.at_level(logging.WARNING), pytest.raises(KeyError):
        await resume.keep_going("the work", work, 0.0)
    assert len(runs) == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "meshkit.resume"]
    assert warnings == ["the work interrupted; going on: OperationalError: database is locked"] * 2


class Stream:
    """What open_stream gives: messages to iterate (then error, if any, raised), and a call
    to cancel. Each message waits for its gate, if it has one."""

    def __init__(self, messages, error: BaseException | None = None, gates: dict | None = None) -> None:
        self.messages = messages
        self.error = error
        self.gates = gates or {}
        self.cancelled = False

    async def __aiter__(self):
        for message in self.messages:
            if message in self.gates:
                await self.gates[message].wait()
            yield message
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        self.cancelled = True


async def test_follow_resumes_from_the_stored_cursor_after_the_database_failed():
    stored, opened, handled, failed_once = [0], [], [], []

    async def cursor():
        return stored[0]

    def open_stream(after):
        opened.append(Stream(range(after + 1, 5)))
        return opened[-1]

    async def handle(messages):
        for message in messages:
            if message == 2 and not failed_once:
                failed_once.append(message)
                raise locked()
            if message == 4:
                raise KeyError("end of the test")
            handled.append(message)
            stored[0] = message

    with pytest.raises(KeyError):
        await resume.follow("events", cursor, open_stream, handle, 0.0)
    assert handled == [1, 2, 3]
    assert [list(s.messages) for s in opened] == [[1, 2, 3, 4], [2, 3, 4]]
    assert all(s.cancelled for s in opened)


async def test_follow_hands_over_what_arrived_while_the_last_batch_was_handled():
    """One by one while it keeps up; what piled up meanwhile together, max_batch at most;
    a stream that breaks after messages has them handled first, then is opened again."""
    broke = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "reset")
    busy = asyncio.Event()
    batches, stored = [], [0]
    streams = [Stream(range(1, 9), broke, gates={2: busy}), Stream([9])]

    async def cursor():
        return stored[0]

    def open_stream(after):
        return streams.pop(0)

    async def handle(messages):
        batches.append(messages)
        stored[0] = messages[-1]
        if messages == [1]:
            busy.set()  # messages 2..8 arrive while this batch is handled
            await asyncio.sleep(0.01)
        if messages[-1] == 9:
            raise KeyError("end of the test")

    with pytest.raises(KeyError):
        await resume.follow("events", cursor, open_stream, handle, 0.0, max_batch=4)
    assert batches == [[1], [2, 3, 4, 5], [6, 7, 8], [9]]


async def test_cancelling_stops_the_work_at_once():
    task = asyncio.create_task(resume.every("a turn", 60.0, lambda: None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_servers_take_the_keepalive_pings_followers_send():
    sent = dict(resume.FOLLOWER_CHANNEL_OPTIONS)
    taken = dict(KEEPALIVE_ACCEPTED)
    # more often than a server takes, and it answers with GOAWAY "too_many_pings"
    assert sent["grpc.keepalive_time_ms"] >= taken["grpc.http2.min_ping_interval_without_data_ms"]
    assert sent["grpc.keepalive_permit_without_calls"] <= taken["grpc.keepalive_permit_without_calls"]
    # a frozen peer is noticed within 15 s
    assert sent["grpc.keepalive_time_ms"] + sent["grpc.keepalive_timeout_ms"] <= 15_000
