"""Who may call what, attacked from outside: every public method over gRPC, gRPC-Web and
REST, by every kind of caller, answers exactly the code the security table says.

    anyone      ListProducts, GetProduct, CheckStock, health, reflection
    customer    CreateOrder, GetOrder, ListOrders, WatchOrder, CancelOrder: own orders only
    operator    every public method, for every customer

Someone else's order is NOT_FOUND, exactly like a missing one; a token that is not
valid is UNAUTHENTICATED even where none is needed; x-shopmesh-* headers a client sends
change nothing.
"""

import datetime as dt
import re
import subprocess
import time

import grpc
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from devmesh import token as tokens
from devmesh.envoy_config import envoy_binary, params_from_env
from devmesh.launcher import admin_get
from devmesh.ports import free_ports
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.http_calls import http_call
from tests.helpers.ids import unique
from tests.helpers.public_methods import PROTOCOLS, methods

ANN, BOB = "ann@example.com", "bob@example.com"
ANYONE = {"ListProducts", "GetProduct", "CheckStock", "Health", "Reflection"}
OPERATOR_ONLY = {"CreateProduct", "RestockProduct", "ConfirmOrder", "ShipOrder", "ListNotifications"}
CHANGING = {"CancelOrder", "ConfirmOrder", "ShipOrder"}
METHODS = sorted(methods("P", "O", ANN))
# Headers a client might send to pass for someone else: Envoy drops them all.
FORGED = [
    ("x-shopmesh-email", ANN),
    ("x-shopmesh-subject", ANN),
    ("x-shopmesh-roles", "operator"),
    ("x-shopmesh-edge", "mesh"),
]
CALLERS = [
    "no token",
    "customer",
    "other customer",
    "operator",
    "expired",
    "wrong key",
    "wrong audience",
    "forged identity",
]
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
}


def expected(caller: str, method: str) -> grpc.StatusCode:
    """The security table, for a call on an order of Ann's (or on Ann's email)."""
    if caller in ("expired", "wrong key", "wrong audience"):
        return grpc.StatusCode.UNAUTHENTICATED
    if method in ANYONE:
        return grpc.StatusCode.OK
    if caller == "no token":
        return grpc.StatusCode.UNAUTHENTICATED
    if caller == "operator":
        return grpc.StatusCode.OK
    if method in OPERATOR_ONLY:
        return grpc.StatusCode.PERMISSION_DENIED
    if caller == "customer":
        return grpc.StatusCode.OK
    # Bob, with or without forged headers: Ann's orders do not exist for him, and he may
    # not order or list for her
    if method in ("CreateOrder", "ListOrders"):
        return grpc.StatusCode.PERMISSION_DENIED
    return grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def callers(mesh) -> dict[str, list[tuple[str, str]]]:
    """Each kind of caller as the metadata / headers it sends."""
    params = params_from_env(mesh.layout.env)
    key = tokens.load_signing_key(mesh.layout.env)
    stranger = ec.generate_private_key(ec.SECP256R1())
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)

    def bearer(value: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {value}")]

    return {
        "no token": [],
        "customer": bearer(tokens.mint(key, params, ANN, ["customer"])),
        "other customer": bearer(tokens.mint(key, params, BOB, ["customer"])),
        "operator": bearer(tokens.mint(key, params, "ops@example.com", ["operator"])),
        "expired": bearer(tokens.mint(key, params, ANN, ["operator"], 3600, now=long_ago)),
        "wrong key": bearer(tokens.mint(stranger, params, ANN, ["operator"])),
        "wrong audience": bearer(tokens.mint(key, params, ANN, ["operator"], audience="another-api")),
        "forged identity": bearer(tokens.mint(key, params, BOB, ["customer"])) + FORGED,
    }


@pytest.fixture(scope="module")
def stocked(mesh, public):
    """A product with plenty of stock, created by an operator."""
    product_id = unique("SEC")
    public.inventory.CreateProduct(
        inventory_pb2.CreateProductRequest(
            product={
                "product_id": product_id,
                "title": "guarded",
                "price": {"currency_code": "EUR", "units": 1},
                "available": 100_000,
            }
        ),
        timeout=10,
    )
    return product_id


def anns_order(public, product_id: str, confirmed: bool = False) -> str:
    order = public.orders.CreateOrder(
        pb.CreateOrderRequest(customer_email=ANN, items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]),
        timeout=10,
    )
    if confirmed:
        public.orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id), timeout=10)
    return order.order_id


# The table is Envoy's and the ownership rule's, the same on either database: checked on
# SQLite here; test_ownership.py checks ownership on both.
@pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_public_method_answers_as_the_table_says(mesh, public, stocked, callers, protocol, caller):
    wrong = []
    shared = anns_order(public, stocked)
    for name in METHODS:
        # a method that may change the order gets one of its own
        order_id = anns_order(public, stocked, confirmed=name == "ShipOrder") if name in CHANGING else shared
        method = methods(stocked, order_id, ANN)[name]
        if (protocol == "rest" and method.rest is None) or (protocol == "grpc-web" and name == "Reflection"):
            continue  # no REST mapping; gRPC-Web has no bidirectional streams
        outcome = PROTOCOLS[protocol](mesh.layout.public, method, callers[caller])
        want = expected(caller, name)
        if outcome.code != want:
            wrong.append(f"{name}: {outcome.code.name} (want {want.name}) {outcome.body!r:.200}")
        # (gRPC-Web carries the code in grpc-status: a service's own error is HTTP 200)
        elif protocol == "rest" and outcome.http_status != HTTP_STATUS[want]:
            wrong.append(f"{name}: HTTP {outcome.http_status} (want {HTTP_STATUS[want]})")
        elif protocol == "rest" and want is grpc.StatusCode.UNAUTHENTICATED:
            if not (outcome.body["code"] == 16 and outcome.headers.get("www-authenticate", "").startswith("Bearer")):
                wrong.append(f"{name}: 401 without a JSON code 16 and a Bearer challenge: {outcome}")
        elif protocol == "grpc-web" and outcome.headers.get("access-control-allow-origin") != "http://shop.example":
            wrong.append(f"{name}: no CORS header, a page could not read the answer")
    assert not wrong, "\n".join(wrong)


def denied_counts(mesh) -> tuple[int, int]:
    stats = mesh.admin_get("/stats?filter=^http\\.public\\.(jwt_authn|rbac)\\.denied$")
    found = dict(re.findall(r"^http\.public\.(\w+)\.denied: (\d+)$", stats, re.M))
    return int(found["jwt_authn"]), int(found["rbac"])


@pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)
def test_refusals_are_counted(mesh, public, stocked, callers):
    jwt_before, rbac_before = denied_counts(mesh)
    listed = methods(stocked, "no-order", ANN)
    PROTOCOLS["grpc"](mesh.layout.public, listed["GetOrder"], callers["no token"])
    PROTOCOLS["grpc"](mesh.layout.public, listed["ShipOrder"], callers["customer"])
    jwt_after, rbac_after = denied_counts(mesh)
    assert jwt_after > jwt_before and rbac_after > rbac_before


@pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)
def test_the_filters_judge_the_grpc_method_because_they_run_after_the_transcoder(mesh, tmp_path):
    """The same config with jwt_authn and rbac moved before the transcoder, run as a second
    Envoy: there they see the REST path, so a customer's REST call to their own orders is
    refused while the same call over gRPC passes. ShopMesh's order gives both one answer."""
    config = yaml.safe_load(mesh.run_dir.joinpath("envoy.yaml").read_text())
    public, admin = free_ports(2)
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "public")
    config["static_resources"]["listeners"] = [listener]
    listener["address"]["socket_address"]["port_value"] = public
    filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    names = [f["name"] for f in filters]
    assert names.index("envoy.filters.http.jwt_authn") > names.index("envoy.filters.http.grpc_json_transcoder")
    assert names.index("envoy.filters.http.rbac") > names.index("envoy.filters.http.grpc_json_transcoder")
    auth = [f for f in filters if f["name"] in ("envoy.filters.http.jwt_authn", "envoy.filters.http.rbac")]
    rest = [f for f in filters if f not in auth]
    transcoder = [f["name"] for f in rest].index("envoy.filters.http.grpc_json_transcoder")
    listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = (
        rest[:transcoder] + auth + rest[transcoder:]
    )
    path = tmp_path / "envoy-misordered.yaml"
    path.write_text(yaml.safe_dump(config))

    ann = mesh.token(ANN, ["customer"])
    process = subprocess.Popen(
        [envoy_binary(), "-c", str(path), "--disable-hot-restart", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if admin_get(f"127.0.0.1:{admin}", "/ready").strip() == "LIVE":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the second Envoy did not start"
            time.sleep(0.1)
        misordered = http_call(f"http://127.0.0.1:{public}/v1/orders", token=ann)
        assert (misordered.status, misordered.body["code"]) == (403, 7)
        assert (
            PROTOCOLS["grpc"](
                f"127.0.0.1:{public}", methods("P", "O", ANN)["ListOrders"], [("authorization", f"Bearer {ann}")]
            ).code
            == grpc.StatusCode.OK
        )
    finally:
        process.terminate()
        process.wait(10)
    assert http_call(f"http://{mesh.layout.public}/v1/orders", token=ann).status == 200
