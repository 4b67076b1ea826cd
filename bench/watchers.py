"""WatchOrder fan-out: many idle watchers of one order, then one change to it.
Streams are what h2load cannot drive, so this load comes from grpc.aio itself."""

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from devmesh import client
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

OPEN_TIMEOUT_SECONDS = 60.0
CHANGE_TIMEOUT_SECONDS = 30.0
# watchers arrive a few hundred at a time, as clients do, not all in one instant
OPEN_BATCH = 250


@dataclass(frozen=True)
class FanOut:
    watchers: int
    connections: int
    rss_idle_mb: float
    rss_watched_mb: float
    # from the ConfirmOrder call until the first / median / last watcher had the change
    first_ms: float
    median_ms: float
    all_ms: float
    # watchers that never saw the change, or saw something else
    missed: int


async def fan_out(
    address: str,
    order_id: str,
    watchers: int,
    connections: int,
    rss_mb: Callable[[], float],
    watcher_token: str,
    operator_token: str,
) -> FanOut:
    """The watchers call with watcher_token (the order's customer, on each of their
    devices); the change is made by an operator (operator_token), as a shop's staff
    confirms an order."""
    # one HTTP/2 connection each, as separate client machines would have
    channels = [
        client.aio_channel(address, watcher_token, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    staff = client.aio_channel(address, operator_token, options=[("grpc.use_local_subchannel_pool", 1)])
    channels.append(staff)
    try:
        rss_idle = rss_mb()
        stubs = [orders_pb2_grpc.OrderServiceStub(channel) for channel in channels[:connections]]
        streams = []
        for start in range(0, watchers, OPEN_BATCH):
            batch = [
                stubs[i % connections].WatchOrder(orders_pb2.WatchOrderRequest(order_id=order_id))
                for i in range(start, min(start + OPEN_BATCH, watchers))
            ]
            # each stream opens with the order as it is now
            await asyncio.wait_for(asyncio.gather(*(stream.read() for stream in batch)), OPEN_TIMEOUT_SECONDS)
            streams += batch
        rss_watched = rss_mb()

        async def arrival(
            stream: grpc.aio.UnaryStreamCall[orders_pb2.WatchOrderRequest, orders_pb2.Order],
        ) -> float | None:
            try:
                update = await stream.read()
            except grpc.aio.AioRpcError:
                return None  # counted as missed
            # anything but an Order is grpc.aio.EOF: the stream ended without the change
            if not isinstance(update, orders_pb2.Order) or update.status != orders_pb2.ORDER_STATUS_CONFIRMED:
                return None
            return time.perf_counter()

        # the staff's connection is open before the clock starts, as the watchers' are
        await asyncio.wait_for(staff.channel_ready(), OPEN_TIMEOUT_SECONDS)
        confirm = orders_pb2_grpc.OrderServiceStub(staff).ConfirmOrder
        waiting = [asyncio.create_task(arrival(stream)) for stream in streams]
        started = time.perf_counter()
        await confirm(orders_pb2.ConfirmOrderRequest(order_id=order_id), timeout=10)
        done, pending = await asyncio.wait(waiting, timeout=CHANGE_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        arrived = [task.result() for task in done]
        received = sorted((at - started) * 1000 for at in arrived if at is not None)
        for stream in streams:
            stream.cancel()
    finally:
        for channel in channels:
            await channel.close()
    missed = watchers - len(received)
    received = received or [float("nan")]
    return FanOut(
        watchers, connections, rss_idle, rss_watched, received[0], statistics.median(received), received[-1], missed
    )
