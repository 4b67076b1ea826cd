"""Each service in-process on a free port with its own database, on mutual TLS with
Envoy's identity (tests/conftest.py: envoy_tls), which the test clients present too."""

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.type import money_pb2

from devmesh.ports import free_ports
from devmesh.smtp_sink import SmtpSink
from inventory.main import create_app as create_inventory
from meshkit import mesh_tls
from notifications.main import create_app as create_notifications
from orders.main import create_app as create_orders
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.private_postgres import PrivatePostgres, unavailable_reason


@dataclass
class Running:
    app: object
    channel: grpc.aio.Channel
    stub: object

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"


def service_channel(env: Mapping[str, str], address: str) -> grpc.aio.Channel:
    """A channel of its own to an in-process service, presenting the identity the services
    of env serve with (Envoy's). Of its own: gRPC shares connections per address within a
    process, and a service in this process may have tried this address before it listened
    (Inventory following the Order service), leaving a shared one waiting out its back-off."""
    tls = mesh_tls.MeshTls(Path(env["MESH_TLS_DIR"]), mesh_tls.ENVOY)
    return mesh_tls.channel(tls, address, [("grpc.use_local_subchannel_pool", 1)], peer=tls.name)


async def _start(create_app, env: dict, stub_class):
    app = await create_app(env)
    await app.start()
    channel = service_channel(env, f"127.0.0.1:{app.port}")
    return Running(app, channel, stub_class(channel))


async def _stop(running: Running) -> None:
    await running.channel.close()
    await running.app.stop(0)


# Reservations wait a second for their order here (five minutes by default), so that
# tests can watch an orphan's stock come back.
RESERVATION_TTL_SECONDS = "1"


@pytest.fixture
def orders_address() -> str:
    """Where the Order service will listen: Inventory follows its order events from there."""
    return f"127.0.0.1:{free_ports(1)[0]}"


@pytest.fixture
async def inventory(service_env, orders_address):
    # No Envoy at this level: Inventory follows the Order service directly (once it is up).
    env = {
        **service_env,
        "INVENTORY_LISTEN": "127.0.0.1:0",
        "MESH_ADDRESS": orders_address,
        "INVENTORY_RESERVATION_TTL_SECONDS": RESERVATION_TTL_SECONDS,
    }
    running = await _start(create_inventory, env, inventory_pb2_grpc.InventoryServiceStub)
    yield running
    await _stop(running)


@pytest.fixture
async def orders(service_env, inventory, orders_address):
    # No Envoy at this level: Orders reaches Inventory directly.
    env = {**service_env, "ORDERS_LISTEN": orders_address, "MESH_ADDRESS": inventory.address}
    running = await _start(create_orders, env, orders_pb2_grpc.OrderServiceStub)
    yield running
    await _stop(running)


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def private_postgres():
    """A running PostgreSQL server of the test's own; stopped at the end whatever happened.
    Without the binaries the test is skipped, unless CI is set: there it fails."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so PostgreSQL is required)")
        pytest.skip(reason)
    server = PrivatePostgres()
    try:
        yield server.start()
    finally:
        server.stop()


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


async def eventually(check, timeout: float = 15.0):
    """Polls an async check until it returns something truthy; returns its last result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


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
