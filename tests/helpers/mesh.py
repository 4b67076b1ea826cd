"""A real mesh for end-to-end tests: Envoy and the three services as processes on free
ports, started the way `make up` starts them, and generated stubs to call it with."""

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from devmesh import mesh_identity
from devmesh.launcher import Layout, Mesh
from shopmesh.inventory.v1 import inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import database_env


def start_mesh(
    request: pytest.FixtureRequest, data_dir: Path, backend: str, extra_env: Mapping[str, str] | None = None
) -> Iterator[Mesh]:
    """A mesh on free ports with its databases on backend; yields it running (a fixture
    yields from it), then stops it and drops its PostgreSQL databases."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SMTP_"))}
    # A stopping service keeps serving 3 s by default so that Envoy can move away; the
    # test meshes stop (and restart services) often, and the drain has a test of its own.
    base["SHUTDOWN_DRAIN_SECONDS"] = "0.2"
    env, created = database_env(backend, data_dir, request)
    layout = Layout.on_free_ports({**base, **env, **(extra_env or {})})
    try:
        with Mesh(layout, data_dir / "run") as running:
            yield running
    finally:
        for url in created:
            request.getfixturevalue("postgres").drop_database(url)


def identities_in(data_dir: Path) -> Layout:
    """A layout of data_dir with the mesh identities made there, for a service started on
    its own: its channels (layout.channel) present them."""
    layout = Layout.from_env({"SHOPMESH_DATA_DIR": str(data_dir)})
    mesh_identity.ensure(layout.mesh_identity)
    return layout


@dataclass
class Stubs:
    """The generated stubs of the three public services on one channel."""

    orders: orders_pb2_grpc.OrderServiceStub
    inventory: inventory_pb2_grpc.InventoryServiceStub
    notifications: notifications_pb2_grpc.NotificationServiceStub


def stubs_for(channel: grpc.Channel) -> Stubs:
    return Stubs(
        orders_pb2_grpc.OrderServiceStub(channel),
        inventory_pb2_grpc.InventoryServiceStub(channel),
        notifications_pb2_grpc.NotificationServiceStub(channel),
    )
