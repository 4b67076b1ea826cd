"""Fuzzing the public API from outside, over REST and gRPC: sizes, encodings, wrong types,
deep nesting, unknown fields, control characters, huge repeated fields and bytes that are
no message at all. Every answer is a client error (or a harmless read), never a 5xx or
an internal code; the services stay SERVING; nothing is written.

Seeded, so a failure repeats; bounded to a few hundred requests."""

import json
import random
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb

pytestmark = pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)

SEED = 20261129
SERVER_ERRORS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
}
READS = ("GetProduct", "ListProducts", "CheckStock", "GetOrder", "ListOrders", "ListNotifications")
UNARY = {
    "/shopmesh.inventory.v1.InventoryService/": (
        "CreateProduct",
        "GetProduct",
        "ListProducts",
        "RestockProduct",
        "CheckStock",
    ),
    "/shopmesh.orders.v1.OrderService/": (
        "CreateOrder",
        "GetOrder",
        "ListOrders",
        "ConfirmOrder",
        "ShipOrder",
        "CancelOrder",
    ),
    "/shopmesh.notifications.v1.NotificationService/": ("ListNotifications",),
}
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "a\r\nBcc: eve@example.com",
    "é" * 300,
    "💥" * 50,
    "x" * 70_000,
    "../../etc/passwd",
    "' OR 1=1 --",
    "%00",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "-1",
    "1e309",
]
NASTY_NUMBERS = [0, -1, 2**63, -(2**63) - 1, 1e309, 3.5, "12", "NaN", None, True, [], {}]


def nasty_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 20 else 3)
    if kind == 0:
        return rng.choice(NASTY_STRINGS)
    if kind == 1:
        return rng.choice(NASTY_NUMBERS)
    if kind == 2:
        return None
    if kind == 3:
        return [nasty_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 4:
        return {rng.choice(["a", "items", "productId", "price", "typo"]): nasty_value(rng, depth + 1)}
    return nasty_value(rng, depth + 20)  # a deep chain ends in a scalar


def order_body(rng: random.Random) -> dict:
    """A CreateOrder body that can never be a valid order: its products do not exist."""
    items = [
        {"productId": f"NOPE-{rng.randrange(10**6)}", "quantity": rng.choice(NASTY_NUMBERS + [1])}
        for _ in range(rng.choice([0, 1, 3, 101, 5000]))
    ]
    body = {
        "customerEmail": rng.choice(NASTY_STRINGS + ["fuzz@example.com"]),
        "items": items,
        "requestId": rng.choice(NASTY_STRINGS),
    }
    body[rng.choice(["requestID", "colour", "customer_email", "items"])] = nasty_value(rng)
    return body


def product_body(rng: random.Random) -> dict:
    """A CreateProduct body whose product id is never a valid one."""
    return {
        "productId": rng.choice(["", "bad id", "x" * 65, "\x00", "../x"]),
        "title": rng.choice(NASTY_STRINGS),
        "price": nasty_value(rng),
        "available": rng.choice(NASTY_NUMBERS),
        "extra": nasty_value(rng),
    }


def rest_call(mesh, token: str, method: str, path: str, raw: bytes | None, content_type: str) -> int:
    request = urllib.request.Request(
        f"http://{mesh.layout.public}{path}",
        data=raw,
        method=method,
        headers={"content-type": content_type, "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def written(public) -> tuple[int, int]:
    """How many products and orders exist."""
    products = public.inventory.ListProducts(inventory_pb2.ListProductsRequest(page_size=1000), timeout=10).products
    orders = public.orders.ListOrders(pb.ListOrdersRequest(page_size=1000), timeout=10).orders
    return len(products), len(orders)


def test_fuzzed_rest_requests_get_client_errors_and_write_nothing(mesh, public, operator_token):
    rng = random.Random(SEED)
    before = written(public)
    answers: dict[tuple[str, int], int] = {}
    for i in range(240):
        shape = i % 6
        if shape == 0:
            method, path, body = "POST", "/v1/orders", json.dumps(order_body(rng)).encode()
        elif shape == 1:
            method, path, body = "POST", "/v1/products", json.dumps(product_body(rng)).encode()
        elif shape == 2:
            method, path, body = (
                "POST",
                f"/v1/products/NOPE-{i}:restock",
                json.dumps({"quantity": nasty_value(rng)}).encode(),
            )
        elif shape == 3:  # not JSON at all, or in another encoding
            method, path = "POST", rng.choice(["/v1/orders", "/v1/products"])
            body = rng.choice(
                [
                    b"{",
                    b"\xff\xfe{\x00}\x00",
                    b"[]",
                    b"null",
                    '{"items": "é"}'.encode("latin-1"),
                    b"{" * 5000 + b"}" * 5000,
                    bytes(rng.randrange(256) for _ in range(300)),
                ]
            )
        elif shape == 4:  # paths and query strings
            method, body = "GET", None
            path = rng.choice(
                [
                    f"/v1/orders/{rng.choice(['%00', '..', 'x' * 300, '%ff', 'a%20b'])}",
                    f"/v1/orders?pageSize={rng.choice(['-1', 'x', '99999999999', '1.5'])}",
                    f"/v1/orders?pageToken={rng.choice(['!!', 'eyJ', 'x' * 2000])}",
                    f"/v1/products/{rng.choice(['%2e%2e', 'x' * 100])}/stock",
                ]
            )
        else:  # a form, and a GET with a body
            method, path, body = rng.choice(
                [("POST", "/v1/orders", b"customerEmail=a&items=1"), ("POST", "/v1/orders/NOPE:cancel", b"{}")]
            )
        content_type = (
            "application/x-www-form-urlencoded" if body and body.startswith(b"customerEmail=") else "application/json"
        )
        status = rest_call(mesh, operator_token, method, path, body, content_type)
        answers[(path.split("?")[0][:40], status)] = answers.get((path.split("?")[0][:40], status), 0) + 1
        assert status < 500, (method, path, body[:200] if body else None, status)
    assert written(public) == before, answers


def test_fuzzed_grpc_messages_get_client_errors_and_write_nothing(mesh, public, operator_token):
    rng = random.Random(SEED)
    before = written(public)
    metadata = [("authorization", f"Bearer {operator_token}")]
    seen: dict[str, set[str]] = {}
    with grpc.insecure_channel(mesh.layout.public) as channel:
        for prefix, names in UNARY.items():
            for name in names:
                call = channel.unary_unary(
                    prefix + name, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
                )
                for _ in range(25):
                    size = rng.choice([0, 1, 5, 64, 1000, 20_000])
                    raw = bytes(rng.randrange(256) for _ in range(size))
                    if rng.random() < 0.3 and name == "CreateOrder":  # a well-formed order of 5,000 items
                        raw = pb.CreateOrderRequest(
                            customer_email="fuzz@example.com",
                            items=[pb.OrderItemRequest(product_id=f"NOPE-{i}", quantity=1) for i in range(5000)],
                        ).SerializeToString()
                    try:
                        call(raw, metadata=metadata, timeout=30)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as error:
                        code = error.code()
                    seen.setdefault(name, set()).add(code.name)
                    assert code not in SERVER_ERRORS, (name, raw[:64], code)
                    assert code != grpc.StatusCode.OK or name in READS, (name, raw[:64])
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert written(public) == before, seen
