"""Open WatchOrder streams cannot starve anything else: one client over its cap is told
RESOURCE_EXHAUSTED at once, a crowd that fills every stream slot is refused more
streams, and meanwhile other clients' GetOrder and CreateOrder, and the event stream the
Notification service follows, go on as before."""

import asyncio

import grpc
import pytest

from devmesh import client
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2 as npb
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh

PER_CLIENT = 4
STREAM_SLOTS = 12  # Envoy's, for every open watch (and reflection, health watch) together
LIMITS = {"ORDERS_MAX_WATCHES_PER_CLIENT": str(PER_CLIENT), "ENVOY_STREAM_MAX_REQUESTS": str(STREAM_SLOTS)}


@pytest.fixture
def limited_mesh(request, tmp_path):
    yield from start_mesh(request, tmp_path, "sqlite", LIMITS)


class Client:
    """One caller with a token of its own, on its own connection."""

    def __init__(self, mesh, email: str, roles: list[str]) -> None:
        self.email = email
        self.channel = client.aio_channel(mesh.layout.public, mesh.token(email, roles))
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.notifications = notifications_pb2_grpc.NotificationServiceStub(self.channel)

    async def order(self, product_id: str) -> str:
        items = [pb.OrderItemRequest(product_id=product_id, quantity=1)]
        return (
            await self.orders.CreateOrder(pb.CreateOrderRequest(customer_email=self.email, items=items), timeout=10)
        ).order_id

    async def watch(self, order_id: str):
        """An open watch (its first message read), or the (code, details) it was refused with."""
        stream = self.orders.WatchOrder(pb.WatchOrderRequest(order_id=order_id))
        try:
            await asyncio.wait_for(stream.read(), 10)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details()
        return stream


async def test_watchers_cannot_starve_unary_calls_or_the_event_stream(limited_mesh):
    mesh = limited_mesh
    operator = Client(mesh, "operator@example.com", ["operator"])
    crowd = [Client(mesh, f"watcher{i}@example.com", ["customer"]) for i in range(4)]
    bystander = Client(mesh, "bystander@example.com", ["customer"])
    try:
        product_id = unique("P")
        product = inventory_pb2.Product(
            product_id=product_id, title="watched", price={"currency_code": "EUR", "units": 1}, available=100
        )
        await operator.inventory.CreateProduct(inventory_pb2.CreateProductRequest(product=product), timeout=10)
        orders = [await each.order(product_id) for each in crowd]

        # one client over its own cap: refused at once, in ShopMesh's words
        first = [await crowd[0].watch(orders[0]) for _ in range(PER_CLIENT + 2)]
        refused = first[PER_CLIENT:]
        assert all(not isinstance(each, tuple) for each in first[:PER_CLIENT])
        assert [code for code, _ in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        assert "too many open order watches" in refused[0][1]

        # the crowd takes every stream slot Envoy has for the Order service ...
        held = first[:PER_CLIENT]
        for each, order_id in zip(crowd[1:3], orders[1:3], strict=True):
            held += [await each.watch(order_id) for _ in range(PER_CLIENT)]
        assert len(held) == STREAM_SLOTS and all(not isinstance(each, tuple) for each in held)
        # ... so one more watch, from anyone, is refused at once
        code, _ = await crowd[3].watch(orders[3])
        assert code == grpc.StatusCode.UNAVAILABLE

        # meanwhile another client's unary calls go on, and its order is emailed (the
        # Notification service's event stream has slots of its own)
        placed = await bystander.order(product_id)
        got = await bystander.orders.GetOrder(pb.GetOrderRequest(order_id=placed), timeout=10)
        assert got.status == pb.ORDER_STATUS_PENDING

        async def emailed() -> bool:
            page = await operator.notifications.ListNotifications(
                npb.ListNotificationsRequest(order_id=placed), timeout=10
            )
            return any(n.order_id == placed for n in page.notifications)

        for _ in range(100):
            if await emailed():
                break
            await asyncio.sleep(0.1)
        assert await emailed()

        # a watch that ends gives its slot back
        held.pop().cancel()
        for _ in range(50):
            if not isinstance(stream := await crowd[3].watch(orders[3]), tuple):
                break
            await asyncio.sleep(0.1)
        assert not isinstance(stream, tuple), stream
        stream.cancel()
        for each in held:
            each.cancel()
    finally:
        await asyncio.gather(*(each.channel.close() for each in [operator, *crowd, bystander]))
