"""The grpcurl binary against Envoy's public listener, relying on reflection only."""

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import unique

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def grpcurl(mesh, *args: str, data: dict | None = None) -> subprocess.CompletedProcess:
    command = [GRPCURL, "-plaintext", "-max-time", "15"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, mesh.layout.public, *args], capture_output=True, text=True, timeout=30)


def test_list_shows_the_three_services(mesh):
    listed = grpcurl(mesh, "list")
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "shopmesh.orders.v1.OrderService",
        "shopmesh.inventory.v1.InventoryService",
        "shopmesh.notifications.v1.NotificationService",
    } <= services


def test_health_answers_through_the_public_listener(mesh):
    overall = grpcurl(mesh, "grpc.health.v1.Health/Check")
    assert overall.returncode == 0, overall.stderr
    assert json.loads(overall.stdout) == {"status": "SERVING"}
    orders = grpcurl(mesh, "grpc.health.v1.Health/Check", data={"service": "shopmesh.orders.v1.OrderService"})
    assert json.loads(orders.stdout) == {"status": "SERVING"}


def test_describe_shows_the_methods(mesh):
    described = grpcurl(mesh, "describe", "shopmesh.orders.v1.OrderService")
    assert described.returncode == 0, described.stderr
    assert "rpc CreateOrder ( .shopmesh.orders.v1.CreateOrderRequest ) returns ( .shopmesh.orders.v1.Order )" in described.stdout
    assert 'get:"/v1/orders/{order_id}"' in described.stdout


def test_create_and_get_an_order(mesh):
    product_id = unique("G")
    created = grpcurl(
        mesh,
        "shopmesh.inventory.v1.InventoryService/CreateProduct",
        data={"product": {"product_id": product_id, "title": "grpcurl product", "price": {"currency_code": "EUR", "units": 2}, "available": 5}},
    )
    assert created.returncode == 0, created.stderr
    placed = grpcurl(
        mesh,
        "shopmesh.orders.v1.OrderService/CreateOrder",
        data={"customer_email": "gus@example.com", "items": [{"product_id": product_id, "quantity": 2}]},
    )
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)
    assert order["status"] == "ORDER_STATUS_PENDING" and order["total"]["units"] == "4"
    # grpcurl prints the proto field names.
    fetched = grpcurl(mesh, "shopmesh.orders.v1.OrderService/GetOrder", data={"order_id": order["order_id"]})
    assert json.loads(fetched.stdout)["order_id"] == order["order_id"]


def test_errors_carry_code_and_message(mesh):
    missing = grpcurl(mesh, "shopmesh.orders.v1.OrderService/GetOrder", data={"order_id": "nope"})
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr and "order not found: nope" in missing.stderr
