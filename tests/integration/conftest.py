"""Each service in-process on a free port with its own database (tests/helpers/in_process.py),
on mutual TLS with Envoy's identity (tests/conftest.py: envoy_tls), which the test clients
present too. No Envoy at this level: the services reach one another directly."""

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from devmesh.ports import free_ports
from devmesh.smtp_sink import SmtpSink
from inventory.main import create_app as create_inventory
from notifications.main import create_app as create_notifications
from orders.main import create_app as create_orders
from shopmesh.inventory.v1 import inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.in_process import RESERVATION_TTL_SECONDS, Running, start, stop
from tests.helpers.private_postgres import PrivatePostgres, unavailable_reason


@pytest.fixture
def orders_address() -> str:
    """Where the Order service will listen: Inventory follows its order events from there."""
    return f"127.0.0.1:{free_ports(1)[0]}"


@pytest.fixture
async def inventory(service_env: dict[str, str], orders_address: str) -> AsyncIterator[Running]:
    """The Inventory service, following the Order service's events directly (once it is up)."""
    env = {
        **service_env,
        "INVENTORY_LISTEN": "127.0.0.1:0",
        "MESH_ADDRESS": orders_address,
        "INVENTORY_RESERVATION_TTL_SECONDS": RESERVATION_TTL_SECONDS,
    }
    running = await start(create_inventory, env, inventory_pb2_grpc.InventoryServiceStub)
    yield running
    await stop(running)


@pytest.fixture
async def orders(service_env: dict[str, str], inventory: Running, orders_address: str) -> AsyncIterator[Running]:
    """The Order service, reaching Inventory directly."""
    env = {**service_env, "ORDERS_LISTEN": orders_address, "MESH_ADDRESS": inventory.address}
    running = await start(create_orders, env, orders_pb2_grpc.OrderServiceStub)
    yield running
    await stop(running)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
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
async def notifications(service_env: dict[str, str], orders: Running, smtp: SmtpSink) -> AsyncIterator[Running]:
    """The Notification service, following the Order service directly, sending to smtp and
    trying a failed send again within half a second."""
    env = {
        **service_env,
        **smtp.env,
        "NOTIFICATIONS_LISTEN": "127.0.0.1:0",
        "MESH_ADDRESS": orders.address,
        "NOTIFICATIONS_RETRY_SECONDS": "0.2",
        "NOTIFICATIONS_RETRY_MAX_SECONDS": "0.5",
    }
    running = await start(create_notifications, env, notifications_pb2_grpc.NotificationServiceStub)
    yield running
    await stop(running)
