"""Each service in-process on a free port with its own SQLite database."""

from dataclasses import dataclass

import grpc
import pytest
from google.type import money_pb2

from devmesh.smtp_sink import SmtpSink
from inventory.main import create_app as create_inventory
from notifications.main import create_app as create_notifications
from orders.main import create_app as create_orders
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2_grpc


@dataclass
class Running:
    app: object
    channel: grpc.aio.Channel
    stub: object

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"


async def _start(create_app, env: dict, stub_class):
    app = await create_app(env)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    return Running(app, channel, stub_class(channel))


async def _stop(running: Running) -> None:
    await running.channel.close()
    await running.app.stop(0)


@pytest.fixture
async def inventory(service_env):
    env = {**service_env, "INVENTORY_LISTEN": "127.0.0.1:0"}
    running = await _start(create_inventory, env, inventory_pb2_grpc.InventoryServiceStub)
    yield running
    await _stop(running)


@pytest.fixture
async def orders(service_env, inventory):
    # No Envoy at this level: Orders reaches Inventory directly.
    env = {**service_env, "ORDERS_LISTEN": "127.0.0.1:0", "MESH_ADDRESS": inventory.address}
    running = await _start(create_orders, env, orders_pb2_grpc.OrderServiceStub)
    yield running
    await _stop(running)


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
async def notifications(service_env, orders, smtp):
    # No Envoy at this level: the consumer follows the Order service directly.
    env = {
        **service_env,
        **smtp.env,
        "NOTIFICATIONS_LISTEN": "127.0.0.1:0",
        "MESH_ADDRESS": orders.address,
        "NOTIFICATIONS_RETRY_SECONDS": "0.2",
        "NOTIFICATIONS_RETRY_MAX_SECONDS": "0.5",
    }
    running = await _start(create_notifications, env, notifications_pb2_grpc.NotificationServiceStub)
    yield running
    await _stop(running)


async def all_pages(list_call, request_for_token, items: str) -> list:
    """Every item a paged List RPC returns, following next_page_token to the end."""
    found, token = [], ""
    while True:
        page = await list_call(request_for_token(token))
        found += getattr(page, items)
        token = page.next_page_token
        if not token:
            return found


def product(product_id: str, available: int, units: int = 5, nanos: int = 0, currency: str = "EUR"):
    return inventory_pb2.CreateProductRequest(
        product=inventory_pb2.Product(
            product_id=product_id,
            title=f"Product {product_id}",
            price=money_pb2.Money(currency_code=currency, units=units, nanos=nanos),
            available=available,
        )
    )
