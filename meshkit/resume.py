"""Long-running work of a service that must outlive a broken connection: following a
stream from a stored cursor, and work done every so often. Neither is a retry of a
call between services (Envoy owns those): a stream that ends is opened again from
where this service's own database says it stopped, and periodic work simply runs
again at its next turn."""

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable

import grpc

log = logging.getLogger(__name__)


async def follow(
    what: str,
    cursor: Callable[[], Awaitable[int]],
    open_stream: Callable[[int], AsyncIterable],
    handle: Callable[[object], Awaitable[None]],
    pause: float,
) -> None:
    """Hands every message of open_stream(cursor) to handle; when the stream breaks,
    opens it again from the cursor stored by then, after pause. Runs until cancelled."""
    while True:
        after = await cursor()
        try:
            async for message in open_stream(after):
                await handle(message)
        except grpc.aio.AioRpcError as error:
            if asyncio.current_task().cancelling():
                # grpc.aio may report our own cancellation as a CANCELLED call:
                # the service is stopping, so stop rather than resume.
                raise asyncio.CancelledError from error
            log.warning(
                "%s broke; resuming from the stored cursor", what,
                extra={"cursor": after, "code": error.code().name, "details": error.details()},
            )
        await asyncio.sleep(pause)


async def every(what: str, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
    """Runs work every seconds until cancelled; a turn that fails is logged, and the next
    one comes as planned."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except grpc.aio.AioRpcError as error:
            log.warning("%s could not finish: %s", what, error.code().name, extra={"details": error.details()})
