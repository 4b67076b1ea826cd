"""The grpcurl binary against Envoy's public listeners (plaintext on loopback, and TLS
with the development CA), relying on reflection only."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ids import unique

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def grpcurl(
    mesh, *args: str, data: dict | None = None, token: str | None = None, tls: bool = False, ca: bool = True
) -> subprocess.CompletedProcess:
    """grpcurl as a user types it: anonymous unless a token is given; over TLS with the
    development CA (-cacert) when tls is set."""
    command = [GRPCURL, "-max-time", "15"]
    if tls:
        command += ["-cacert", str(mesh.layout.credentials.ca)] if ca else []
    else:
        command += ["-plaintext"]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    address = mesh.layout.public_tls if tls else mesh.layout.public
    return subprocess.run([*command, address, *args], capture_output=True, text=True, timeout=30)


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
    assert (
        "rpc CreateOrder ( .shopmesh.orders.v1.CreateOrderRequest ) returns ( .shopmesh.orders.v1.Order )"
        in described.stdout
    )
    assert 'get:"/v1/orders/{order_id}"' in described.stdout


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_an_operator_stocks_a_product_and_a_customer_orders_it(mesh, tls):
    product_id = unique("G")
    created = grpcurl(
        mesh,
        "shopmesh.inventory.v1.InventoryService/CreateProduct",
        data={
            "product": {
                "product_id": product_id,
                "title": "grpcurl product",
                "price": {"currency_code": "EUR", "units": 2},
                "available": 5,
            }
        },
        token=mesh.token("ops@example.com", ["operator"]),
        tls=tls,
    )
    assert created.returncode == 0, created.stderr
    gus = mesh.token("gus@example.com", ["customer"])
    # no customer_email: a customer orders for the email of their token
    placed = grpcurl(
        mesh,
        "shopmesh.orders.v1.OrderService/CreateOrder",
        data={"items": [{"product_id": product_id, "quantity": 2}]},
        token=gus,
        tls=tls,
    )
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)
    assert order["status"] == "ORDER_STATUS_PENDING" and order["total"]["units"] == "4"
    assert order["customer_email"] == "gus@example.com"
    # grpcurl prints the proto field names.
    fetched = grpcurl(
        mesh, "shopmesh.orders.v1.OrderService/GetOrder", data={"order_id": order["order_id"]}, token=gus, tls=tls
    )
    assert json.loads(fetched.stdout)["order_id"] == order["order_id"]


def test_errors_carry_code_and_message(mesh):
    missing = grpcurl(mesh, "shopmesh.orders.v1.OrderService/GetOrder", data={"order_id": "nope"}, token=mesh.token())
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr and "order not found: nope" in missing.stderr


def test_no_token_is_unauthenticated(mesh):
    refused = grpcurl(mesh, "shopmesh.orders.v1.OrderService/ListOrders", data={})
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr


def test_tls_without_the_ca_is_refused(mesh):
    """The edge certificate is signed by the development CA, which no system trusts."""
    untrusted = grpcurl(mesh, "list", tls=True, ca=False)
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr
    assert grpcurl(mesh, "list", tls=True).returncode == 0


@pytest.mark.parametrize("service", ["orders", "inventory", "notifications"])
def test_an_operator_debugs_a_service_on_its_own_port_with_the_operator_certificate(mesh, service):
    """The README's command: the mesh CA, the operator's certificate and key, and the
    service's name to check its certificate against. Without them the port says nothing."""
    identity = mesh.layout.mesh_identity.directory("operator")
    address = mesh.layout.address(f"{service.upper()}_LISTEN")
    command = [
        GRPCURL,
        "-max-time",
        "15",
        "-cacert",
        str(identity / "ca.pem"),
        "-cert",
        str(identity / "cert.pem"),
        "-key",
        str(identity / "key.pem"),
        "-servername",
        service,
        address,
    ]
    listed = subprocess.run([*command, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert f"shopmesh.{service}.v1." in listed.stdout
    health = subprocess.run([*command, "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=30)
    assert json.loads(health.stdout) == {"status": "SERVING"}
    plaintext = subprocess.run(
        [GRPCURL, "-max-time", "5", "-plaintext", address, "list"], capture_output=True, text=True, timeout=30
    )
    assert plaintext.returncode != 0
    no_certificate = subprocess.run(
        [GRPCURL, "-max-time", "5", "-cacert", str(identity / "ca.pem"), "-servername", service, address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert no_certificate.returncode != 0
