"""Long-running work of a service that must outlive a broken connection or a database
away for a while: following a stream from a stored cursor, work done every so often, and
any loop that keeps going. None is a retry of a call between services (Envoy owns
those): a stream that ends is opened again from where this service's own database says
it stopped, and other work simply runs again at its next turn.

Only transient errors are outlived (a peer or the database gone for a moment). Any other
error ends the work: it is a bug, and the server reports the task failed instead of
serving without it."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from meshkit.database import is_outage

log = logging.getLogger(__name__)

# A message of the stream follow() reads
M = TypeVar("M")

# For the channel a stream is followed over: HTTP/2 pings every 10 s, the connection
# given up after 5 s without an answer. A stream held by a frozen peer sends nothing and
# never ends; only an unanswered ping shows it (within 15 s), and follow() then resumes.
# Pings go out with no call open and no data in between too: a quiet stream is the
# normal case. (meshkit.server's KEEPALIVE_ACCEPTED lets servers take them.)
FOLLOWER_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def is_transient(error: BaseException) -> bool:
    """A call to a peer that failed, or a database that is away for a while."""
    return isinstance(error, grpc.aio.AioRpcError) or is_outage(error)


def reason(error: BaseException) -> str:
    """The error in one short line (a database error without its SQL)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


async def keep_going(what: str, work: Callable[[], Awaitable[None]], pause: float) -> None:
    """Runs work() again and again, pause apart, until cancelled. A run that ends with a
    transient error is logged as a warning; any other error is raised."""
    while True:
        try:
            await work()
        except Exception as error:
            task = asyncio.current_task()  # the one running this loop: never None here
            if task is not None and task.cancelling():
                # grpc.aio may report our own cancellation as a CANCELLED call:
                # the service is stopping, so stop rather than go on.
                raise asyncio.CancelledError from error
            if not is_transient(error):
                raise
            log.warning("%s interrupted; going on: %s", what, reason(error), extra={"pause_seconds": pause})
        await asyncio.sleep(pause)


# The most messages follow() hands over at once (and holds received, unhandled).
FOLLOW_BATCH = 256


async def follow(
    what: str,
    cursor: Callable[[], Awaitable[int]],
    open_stream: Callable[[int], grpc.aio.UnaryStreamCall[Any, M]],
    handle: Callable[[list[M]], Awaitable[None]],
    pause: float,
    max_batch: int = FOLLOW_BATCH,
) -> None:
    """Hands the messages of open_stream(cursor) to handle in order, a batch at a time:
    each batch is what arrived while the previous one was handled (up to max_batch), so a
    follower that keeps up handles them one by one, and one that falls behind, under load
    or catching up, handles many in one transaction. When the stream breaks or handle meets
    a transient error, opens it again after pause from the cursor stored by then, so
    nothing is skipped. Runs until cancelled."""

    async def from_stored_cursor() -> None:
        stream = open_stream(await cursor())
        # read ahead while a batch is handled; full, it stops reading (and the stream's flow control holds the sender)
        received: asyncio.Queue[M | _Ended] = asyncio.Queue(max_batch)
        reader = asyncio.create_task(_read_into(stream, received))
        try:
            while True:
                batch = [await received.get()]
                while len(batch) < max_batch and not received.empty():
                    batch.append(received.get_nowait())
                messages = [message for message in batch if not isinstance(message, _Ended)]
                if messages:
                    await handle(messages)
                end = batch[-1]  # nothing is put after a stream's end
                if isinstance(end, _Ended):
                    end.raise_if_failed()
                    return
        finally:
            reader.cancel()
            stream.cancel()  # when handle failed, the call is still open

    await keep_going(what, from_stored_cursor, pause)


class _Ended:
    """Put after a stream's last message: it ended, or broke with error."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


async def _read_into(stream: grpc.aio.UnaryStreamCall[Any, M], received: asyncio.Queue[M | _Ended]) -> None:
    try:
        async for message in stream:
            await received.put(message)
    except Exception as error:  # noqa: BLE001 - handed over after the messages before it
        await received.put(_Ended(error))
    else:
        await received.put(_Ended())


async def every(what: str, seconds: float, work: Callable[[], Awaitable[object]]) -> None:
    """Runs work every seconds until cancelled (what it returns is let go); a turn that
    meets a transient error is logged, and the next one comes as planned."""

    async def turn() -> None:
        await asyncio.sleep(seconds)
        await work()

    await keep_going(what, turn, 0.0)
