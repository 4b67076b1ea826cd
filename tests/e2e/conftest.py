"""The meshes of the end-to-end tests (tests/helpers/mesh.py starts them), and the
clients that call them."""

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from google.type import money_pb2

from devmesh import client
from devmesh.launcher import Mesh
from shopmesh.inventory.v1 import inventory_pb2
from tests.helpers.databases import BACKENDS
from tests.helpers.http_calls import Reply, http_call
from tests.helpers.ids import unique
from tests.helpers.mesh import Stubs, start_mesh, stubs_for


@pytest.fixture(scope="session", params=BACKENDS)
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """The shared mesh of most end-to-end tests, once per database backend."""
    yield from start_mesh(request, tmp_path_factory.mktemp(f"mesh-{request.param}"), request.param)


@pytest.fixture
def fault_mesh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mesh]:
    """A mesh of the test's own on SQLite, for tests that break it; a test passes extra
    environment with @pytest.mark.parametrize("fault_mesh", [{...}], indirect=True)."""
    yield from start_mesh(request, tmp_path, "sqlite", getattr(request, "param", None))


@pytest.fixture(scope="session")
def operator_token(mesh: Mesh) -> str:
    return mesh.token("operator@example.com", ["operator"])


@pytest.fixture(scope="session")
def public(mesh: Mesh, operator_token: str) -> Iterator[Stubs]:
    """Generated stubs on Envoy's public listener, calling as an operator."""
    with client.channel(mesh.layout.public, operator_token) as channel:
        yield stubs_for(channel)


@pytest.fixture(scope="session")
def internal(mesh: Mesh) -> Iterator[Stubs]:
    """Generated stubs on Envoy's mesh listener, calling with the Order service's identity
    (the one caller of ReserveStock and ReleaseStock)."""
    with mesh.layout.channel(mesh.layout.mesh, "envoy", caller="orders") as channel:
        yield stubs_for(channel)


@pytest.fixture
def new_product_in() -> Callable[..., str]:
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
def new_product(public: Stubs, new_product_in: Callable[..., str]) -> Callable[..., str]:
    """Creates a product with a fresh id through the shared mesh's Envoy; returns its id."""

    def make(available: int, units: int = 5, nanos: int = 0) -> str:
        return new_product_in(public, available, units, nanos)

    return make


@pytest.fixture(scope="session")
def rest(mesh: Mesh, operator_token: str) -> Callable[..., Reply]:
    """Plain HTTP/1.1 against Envoy's public listener: rest(method, path, json_body), as an
    operator unless another token (or None: no token) is given."""

    def call(
        method: str,
        path: str,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = operator_token,
    ) -> Reply:
        return http_call(f"http://{mesh.layout.public}{path}", method, body, headers, token)

    return call
