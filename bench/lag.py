"""Notification lag: from an order's commit to its email accepted by the SMTP sink."""

import asyncio
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from devmesh.smtp_sink import SmtpSink
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

DELIVERY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Lag:
    orders: int
    in_flight: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # orders whose email had not arrived within the timeout
    missing: int


async def notification_lag(
    address: str, sink: SmtpSink, product_id: str, orders: int, in_flight: int, token_for: Callable[[str], str]
) -> Lag:
    """Places `orders` orders, in_flight at a time, each for its own address, and
    times each one's email. create_time is set in the order's transaction, just
    before its commit, so the lag is measured from slightly before the commit.

    Each order is placed by its own customer, with a token token_for(email) made
    before the call, as separate shoppers would.

    One order goes first, untimed, and its email is awaited: the Notification
    service may still be opening its event stream right after start."""
    created: dict[str, float] = {}
    gate = asyncio.Semaphore(in_flight)
    # addresses of this measurement only: the sink keeps the emails of earlier ones
    run = uuid.uuid4().hex[:8]
    # plaintext to loopback (local credentials), a token per call rather than per channel
    transport = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    async with grpc.aio.secure_channel(address, transport) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)

        async def place(number: int | str) -> None:
            email = f"lag-{run}-{number}@bench.example"
            customer = grpc.access_token_call_credentials(token_for(email))
            async with gate:
                order = await stub.CreateOrder(
                    orders_pb2.CreateOrderRequest(
                        customer_email=email, items=[orders_pb2.OrderItemRequest(product_id=product_id, quantity=1)]
                    ),
                    timeout=10,
                    credentials=customer,
                )
            created[email] = order.create_time.ToNanoseconds() / 1e9

        await place("warm-up")
        await _emails_to(sink, set(created), DELIVERY_TIMEOUT_SECONDS)
        created.clear()
        await asyncio.gather(*(place(n) for n in range(orders)))
    received = await _emails_to(sink, set(created), DELIVERY_TIMEOUT_SECONDS)
    lags = sorted((received[email] - created[email]) * 1000 for email in received)
    if len(lags) < 2:
        lags = (lags * 2) or [float("nan")] * 2
    cuts = statistics.quantiles(lags, n=100, method="inclusive")
    return Lag(orders, in_flight, cuts[49], cuts[98], lags[-1], orders - len(received))


async def _emails_to(sink: SmtpSink, addresses: set[str], timeout: float) -> dict[str, float]:
    """address -> when its first email was accepted, once all arrived or at the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found: dict[str, float] = {}
        for message in sink.received():
            if message.to in addresses and message.to not in found:
                found[message.to] = message.accepted_at
        if len(found) == len(addresses) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)
