"""Open WatchOrder streams are capped per caller and per process, so that watchers
cannot take the slots every other call needs (issue 14)."""

import asyncio
import time

import grpc
import pytest
from google.rpc import error_details_pb2

from orders.main import create_app
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.grpc_calls import details
from tests.helpers.in_process import service_channel
from tests.helpers.messages import create, product
from tests.helpers.waiting import eventually

# The caps are counted in the Order process, not in its database: one backend shows them.
pytestmark = pytest.mark.parametrize("service_env", ["sqlite"], indirect=True)
PER_CLIENT = 16  # ORDERS_MAX_WATCHES_PER_CLIENT's default


def customer(subject: str) -> tuple[tuple[str, str], ...]:
    """The identity headers Envoy's edge sets for a customer's verified token."""
    return (
        ("x-shopmesh-edge", "public"),
        ("x-shopmesh-subject", subject),
        ("x-shopmesh-email", f"{subject}@example.com"),
        ("x-shopmesh-roles", "customer"),
    )


async def watch(stub, order_id: str, metadata) -> grpc.aio.UnaryStreamCall:
    """A watch that has its first message (the order as it is now)."""
    stream = stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), metadata=metadata)
    first = await asyncio.wait_for(stream.read(), 5)
    assert first.order_id == order_id
    return stream


async def refused(stub, order_id: str, metadata) -> tuple[grpc.aio.AioRpcError, float]:
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), metadata=metadata).read(), 5)
    return raised.value, time.perf_counter() - started


async def test_one_caller_gets_its_cap_of_watches_and_everyone_else_is_served(orders, inventory):
    await inventory.stub.CreateProduct(product("A", 100))
    ann, bob = customer("ann"), customer("bob")
    anns = await orders.stub.CreateOrder(create(email="", A=1), metadata=ann)
    streams = await asyncio.gather(*(watch(orders.stub, anns.order_id, ann) for _ in range(PER_CLIENT)))

    for _ in range(4):  # over the cap: refused at once, in ShopMesh's words, with the quota named
        error, seconds = await refused(orders.stub, anns.order_id, ann)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == (
            f"too many open order watches for this caller (limit {PER_CLIENT}); close one before watching another"
        )
        assert [v.subject for v in details(error, error_details_pb2.QuotaFailure)[0].violations] == ["subject:ann"]
        assert seconds < 0.5

    # another caller watches; both still get, place and list orders
    bobs = await orders.stub.CreateOrder(create(email="", A=1), metadata=bob)
    bobs_stream = await watch(orders.stub, bobs.order_id, bob)
    assert (await orders.stub.GetOrder(pb.GetOrderRequest(order_id=anns.order_id), metadata=ann)) == anns
    await orders.stub.CreateOrder(create(email="", A=1), metadata=ann)

    # a closed watch gives its slot back
    streams[0].cancel()

    async def reopened():
        try:
            return await watch(orders.stub, anns.order_id, ann)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return None

    again = await eventually(reopened, timeout=5)
    assert again is not None
    for stream in [*streams[1:], again, bobs_stream]:
        stream.cancel()


async def test_the_process_cap_refuses_new_watchers_but_not_the_services_event_stream(service_env, inventory):
    app = await create_app(
        {**service_env, "ORDERS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": inventory.address, "ORDERS_MAX_WATCHES": "3"}
    )
    await app.start()
    try:
        async with service_channel(service_env, f"127.0.0.1:{app.port}") as channel:
            stub = orders_pb2_grpc.OrderServiceStub(channel)
            await inventory.stub.CreateProduct(product("A", 100))
            orders = {
                name: await stub.CreateOrder(create(email="", A=1), metadata=customer(name))
                for name in ("ann", "bob", "cat")
            }
            # three callers, one watch each, fill the process; an operator's counts too
            streams = [await watch(stub, orders[name].order_id, customer(name)) for name in ("ann", "bob")]
            operator = (("x-shopmesh-edge", "public"), ("x-shopmesh-subject", "ops"), ("x-shopmesh-roles", "operator"))
            streams.append(await watch(stub, orders["ann"].order_id, operator))
            error, seconds = await refused(stub, orders["cat"].order_id, customer("cat"))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details() == "the Order service has too many open order watches (limit 3); try again later"
            assert seconds < 0.5
            # Notifications and Inventory follow every event, however many watch
            events = stub.StreamOrderEvents(pb.StreamOrderEventsRequest())
            assert (await asyncio.wait_for(events.read(), 5)).order.order_id == orders["ann"].order_id
            for stream in [*streams, events]:
                stream.cancel()
    finally:
        await app.stop(0)
