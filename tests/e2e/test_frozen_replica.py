"""An Order replica that freezes (a paused container, a partition) while it holds the
event streams the Notification and Inventory services follow: Envoy's health checks
find it, its connections are closed, and the streams move to the other replica. Orders
placed meanwhile are emailed within seconds."""

import json
import os
import signal
import sys
import time

import pytest

from devmesh import client
from devmesh.launcher import SERVICES, Layout, Mesh, cluster_health
from devmesh.ports import free_ports
from shopmesh.notifications.v1 import notifications_pb2 as npb
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.databases import database_env
from tests.helpers.mesh import stubs_for
from tests.helpers.waiting import settles

# from SIGSTOP to the emails of orders placed through the other replica
MOVE_SECONDS = 20


@pytest.fixture
def two_order_replicas(request, tmp_path):
    """A mesh whose Envoy routes to two Order processes on one database."""
    env, _ = database_env("sqlite", tmp_path, request)
    layout = Layout.on_free_ports({**os.environ, **env, "SHUTDOWN_DRAIN_SECONDS": "0.2"})
    second = f"127.0.0.1:{free_ports(1)[0]}"
    layout = Layout.from_env({**layout.env, "ORDERS_UPSTREAM": f"{layout.address('ORDERS_LISTEN')},{second}"})
    mesh = Mesh(layout, tmp_path / "run")
    try:
        for name in SERVICES:
            mesh.start_service(name)
        mesh.start_process("orders-2", [sys.executable, "-m", "orders"], second, env={"ORDERS_LISTEN": second})
        mesh.start_envoy()
        yield mesh, {layout.address("ORDERS_LISTEN"): "orders", second: "orders-2"}
    finally:
        for process in mesh.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        mesh.stop()


def streams_by_replica(mesh) -> dict[str, int]:
    """Open StreamOrderEvents streams on each Order replica, as Envoy counts them."""
    for cluster in json.loads(mesh.admin_get("/clusters?format=json"))["cluster_statuses"]:
        if cluster["name"] == "orders_events":
            return {
                "{address}:{port_value}".format(**host["address"]["socket_address"]): next(
                    int(stat.get("value", 0)) for stat in host["stats"] if stat["name"] == "rq_active"
                )
                for host in cluster["host_statuses"]
            }
    raise AssertionError("no orders_events cluster")


def sent(stubs, order_ids: set[str]) -> bool:
    page = stubs.notifications.ListNotifications(npb.ListNotificationsRequest(page_size=1000), timeout=10)
    return order_ids <= {n.order_id for n in page.notifications if n.status == npb.Notification.STATUS_SENT}


def place(stubs, product_id: str) -> str:
    request = pb.CreateOrderRequest(
        customer_email="frozen@example.com", items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]
    )
    return stubs.orders.CreateOrder(request, timeout=10).order_id


def test_streams_leave_a_frozen_replica_within_seconds(two_order_replicas, new_product_in):
    mesh, replicas = two_order_replicas
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = new_product_in(stubs, 100)
        first = place(stubs, product_id)
        assert settles(lambda: sent(stubs, {first}), timeout=20)
        # both followers (Notifications, Inventory) hold a stream by now
        assert settles(lambda: sum(streams_by_replica(mesh).values()) >= 2)
        held = streams_by_replica(mesh)
        frozen = max(held, key=held.get)
        os.kill(mesh.processes[replicas[frozen]].pid, signal.SIGSTOP)
        stopped = time.monotonic()

        # Envoy's health checks find the frozen replica and route around it ...
        assert settles(lambda: cluster_health(mesh.layout.admin)["orders"].count(False) == 1, timeout=MOVE_SECONDS)
        unrouted = time.monotonic() - stopped
        # ... and the streams it held are opened again on the other one
        assert settles(lambda: streams_by_replica(mesh)[frozen] == 0, timeout=MOVE_SECONDS), streams_by_replica(mesh)
        assert settles(lambda: sum(streams_by_replica(mesh).values()) >= 2), streams_by_replica(mesh)
        moved = time.monotonic() - stopped
        # orders placed now are emailed
        placed = {place(stubs, product_id) for _ in range(5)}
        assert settles(lambda: sent(stubs, placed), timeout=MOVE_SECONDS)
        emailed = time.monotonic() - stopped
    print(
        f"frozen replica out of rotation after {unrouted:.1f} s, its streams moved after {moved:.1f} s; "
        f"orders placed then emailed {emailed:.1f} s after the freeze"
    )
