"""One real mesh for the end-to-end tests: Envoy and the three services as
processes on free ports, started the way `make up` starts them."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.type import money_pb2

from devmesh import client, mesh_identity
from devmesh.launcher import Layout, Mesh
from devmesh.paths import ROOT
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.databases import BACKENDS, database_env


def start_mesh(request, data_dir, backend: str, extra_env: dict | None = None):
    """A mesh on free ports with its databases on backend; yields it running."""
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


def identities_in(data_dir) -> Layout:
    """A layout of data_dir with the mesh identities made there, for a service started on
    its own: its channels (layout.channel) present them."""
    layout = Layout.from_env({"SHOPMESH_DATA_DIR": str(data_dir)})
    mesh_identity.ensure(layout.mesh_identity)
    return layout


@pytest.fixture(scope="session", params=BACKENDS)
def mesh(request, tmp_path_factory):
    """The shared mesh of most end-to-end tests, once per database backend."""
    yield from start_mesh(request, tmp_path_factory.mktemp(f"mesh-{request.param}"), request.param)


@dataclass
class Stubs:
    orders: orders_pb2_grpc.OrderServiceStub
    inventory: inventory_pb2_grpc.InventoryServiceStub
    notifications: notifications_pb2_grpc.NotificationServiceStub


def stubs_for(channel: grpc.Channel) -> Stubs:
    return Stubs(
        orders_pb2_grpc.OrderServiceStub(channel),
        inventory_pb2_grpc.InventoryServiceStub(channel),
        notifications_pb2_grpc.NotificationServiceStub(channel),
    )


@pytest.fixture(scope="session")
def operator_token(mesh) -> str:
    return mesh.token("operator@example.com", ["operator"])


@pytest.fixture(scope="session")
def public(mesh, operator_token):
    """Generated stubs on Envoy's public listener, calling as an operator."""
    with client.channel(mesh.layout.public, operator_token) as channel:
        yield stubs_for(channel)


@pytest.fixture(scope="session")
def internal(mesh):
    """Generated stubs on Envoy's mesh listener, calling with the Order service's identity
    (the one caller of ReserveStock and ReleaseStock)."""
    with mesh.layout.channel(mesh.layout.mesh, "envoy", caller="orders") as channel:
        yield stubs_for(channel)


def settles(check, timeout: float = 15.0):
    """Polls check until it returns something truthy (what the mesh does by itself, such as
    stock coming back after a cancel, takes a moment); returns its last result."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def unique(prefix: str) -> str:
    # 64 random bits: the soak test alone draws ~20,000 request ids, and 32 bits
    # collided about one run in 25 (a repeat request_id with other items)
    return f"{prefix}-{uuid.uuid4().hex[:16].upper()}"


@pytest.fixture
def new_product_in():
    """Creates a product with a fresh id through the given stubs; returns its id."""

    def make(stubs: Stubs, available: int, units: int = 5, nanos: int = 0) -> str:
        product_id = unique("P")
        stubs.inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=product_id,
                    title=f"Test product {product_id}",
                    price=money_pb2.Money(currency_code="EUR", units=units, nanos=nanos),
                    available=available,
                )
            ),
            timeout=10,
        )
        return product_id

    return make


@pytest.fixture
def new_product(public, new_product_in):
    """Creates a product with a fresh id through the shared mesh's Envoy; returns its id."""
    return lambda available, units=5, nanos=0: new_product_in(public, available, units, nanos)


@dataclass
class Reply:
    status: int
    headers: dict
    body: object


def http_call(url: str, method: str = "GET", body=None, headers=None, token: str | None = None) -> Reply:
    """One plain HTTP/1.1 request with a JSON body, and a bearer token when one is given."""
    data = None if body is None else json.dumps(body).encode()
    auth = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **auth, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            status, head, raw = reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Reply(status, {k.lower(): v for k, v in head.items()}, parsed)


@pytest.fixture(scope="session")
def rest(mesh, operator_token):
    """Plain HTTP/1.1 against Envoy's public listener: rest(method, path, json_body), as an
    operator unless another token (or None: no token) is given."""

    def call(method: str, path: str, body=None, headers=None, token: str | None = operator_token) -> Reply:
        return http_call(f"http://{mesh.layout.public}{path}", method, body, headers, token)

    return call


def run_bench(arguments: list[str], timeout: float) -> str:
    """`python -m bench` with arguments, as a user runs it; its output, once it exited 0."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = bench.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Ctrl-C, as a user would: the benchmark stops the meshes it started
        bench.send_signal(signal.SIGINT)
        output, _ = bench.communicate(timeout=60)
        pytest.fail(f"the benchmark did not finish in {timeout:g} s:\n{output[-3000:]}")
    assert bench.returncode == 0, output[-3000:]
    return output
