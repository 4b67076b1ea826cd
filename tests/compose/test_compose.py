"""`make compose-test`: the real compose.yaml, run with podman on this machine,
used as a client would use it through Envoy's published port: TLS with the
development CA taken out of the container, and tokens minted inside it. Inside the
project every hop is mutual TLS with identities made by the mesh-identity container,
rotated (and signed by an operator's own CA) while everything runs."""

import datetime as dt
import http.client
import json
import os
import ssl
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from google.type import money_pb2

from devmesh import credentials
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.helpers.podman import REPLICAS, Project, sink_emails

pytestmark = pytest.mark.compose

PRODUCT = "COMPOSE-1"
OPERATOR = "ops@example.com"
# each service's port on the project's network, and where its identity is mounted
SERVICE_ADDRESSES = {"orders": "orders:50051", "inventory": "inventory:50052", "notifications": "notifications:50053"}
MESH_DIR = "/run/shopmesh/mesh"
# Envoy's mesh listener, seen from inside its own container
MESH_LISTENER = "0.0.0.0_8081"

# Run in the Envoy container: a health check on each target as a plaintext client, as a TLS
# client with the mesh CA but no certificate of its own, and as Envoy (its identity);
# prints the status code (or SERVING) of each.
CALLERS = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from meshkit import mesh_tls

    envoy = mesh_tls.MeshTls(Path(os.environ["ENVOY_MESH_TLS_DIR"]), "envoy")
    def check(channel):
        with channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            except grpc.RpcError as error:
                return error.code().name
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    seen = {}
    for name, address in json.loads(sys.argv[1]).items():
        options = [mesh_tls.server_name_option(name)]
        seen[name] = {
            "plaintext": check(grpc.insecure_channel(address)),
            "no certificate": check(grpc.secure_channel(
                address, grpc.ssl_channel_credentials(envoy.material().ca), options=options)),
            "envoy": check(grpc.secure_channel(address, envoy.channel_credentials(), options=options)),
        }
    print(json.dumps(seen))
""")


def stubs(project):
    """Stubs on one TLS channel to the published port; each call brings its own token."""
    channel = grpc.secure_channel(project.public, grpc.ssl_channel_credentials(project.ca.read_bytes()))
    return (
        channel,
        orders_pb2_grpc.OrderServiceStub(channel),
        inventory_pb2_grpc.InventoryServiceStub(channel),
        notifications_pb2_grpc.NotificationServiceStub(channel),
    )


def new_order(email: str) -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        customer_email=email, items=[orders_pb2.OrderItemRequest(product_id=PRODUCT, quantity=1)]
    )


def customer(project, email: str) -> grpc.CallCredentials:
    return grpc.access_token_call_credentials(project.token(email, "customer"))


def operator(project) -> grpc.CallCredentials:
    return grpc.access_token_call_credentials(project.token(OPERATOR, "operator"))


def rest(project, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    """One HTTPS request to the published port, trusting only the development CA."""
    auth = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"https://{project.public}{path}",
        method=method,
        headers={"content-type": "application/json", **auth},
        data=None if body is None else json.dumps(body).encode(),
    )
    tls = ssl.create_default_context(cafile=str(project.ca))
    with urllib.request.urlopen(request, timeout=15, context=tls) as reply:
        return json.loads(reply.read())


def emails(project) -> list[dict]:
    """What the SMTP sink accepted."""
    return sink_emails(project.logs(project.container("mailpit")))


def sent_notifications(project, notifications, email: str) -> list:
    reply = notifications.ListNotifications(
        notifications_pb2.ListNotificationsRequest(recipient=email, page_size=1000),
        timeout=10,
        credentials=operator(project),
    )
    return list(reply.notifications)


def eventually(check, timeout: float = 60.0):
    """Polls check until it returns something truthy; UNAVAILABLE (a restarted
    service Envoy has not routed to yet) counts as not yet, as for any client."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            found = None
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_orders_by_grpc_and_rest_are_followed_and_emailed(project):
    channel, orders, inventory, notifications = stubs(project)
    with channel:
        inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=PRODUCT,
                    title="Compose product",
                    price=money_pb2.Money(currency_code="EUR", units=3),
                    available=1000,
                )
            ),
            timeout=30,
            credentials=operator(project),
        )
        by_grpc = orders.CreateOrder(
            new_order("grpc@example.com"), timeout=30, credentials=customer(project, "grpc@example.com")
        )
        by_rest = rest(
            project,
            "POST",
            "/v1/orders",
            {"customerEmail": "rest@example.com", "items": [{"productId": PRODUCT, "quantity": 2}]},
            token=project.token("rest@example.com"),
        )
        assert (by_rest["total"]["currencyCode"], by_rest["total"]["units"]) == ("EUR", "6")
        assert (
            rest(project, "GET", f"/v1/orders/{by_grpc.order_id}", token=project.token("grpc@example.com"))[
                "customerEmail"
            ]
            == "grpc@example.com"
        )

        watch = orders.WatchOrder(
            orders_pb2.WatchOrderRequest(order_id=by_grpc.order_id),
            timeout=60,
            credentials=customer(project, "grpc@example.com"),
        )
        assert next(watch).status == orders_pb2.ORDER_STATUS_PENDING
        orders.ConfirmOrder(
            orders_pb2.ConfirmOrderRequest(order_id=by_grpc.order_id), timeout=30, credentials=operator(project)
        )
        assert next(watch).status == orders_pb2.ORDER_STATUS_CONFIRMED
        watch.cancel()

        # every notification the service sent reached the SMTP server, Message-ID and all
        sent = eventually(
            lambda: [
                n
                for n in sent_notifications(project, notifications, "grpc@example.com")
                if n.status == notifications_pb2.Notification.STATUS_SENT
            ][1:]
        )
        assert len(sent) == 1, "the confirmation email was not sent"
        received = {e["message_id"] for e in emails(project)}
        assert {n.message_id for n in sent_notifications(project, notifications, "grpc@example.com")} <= received
        assert eventually(lambda: [e for e in emails(project) if e["to"] == "rest@example.com"])


def test_notifications_down_and_back_loses_nothing(project):
    channel, orders, _, notifications = stubs(project)
    with channel:
        customers = [f"away-{n}@example.com" for n in range(5)]
        tokens = {email: customer(project, email) for email in customers}
        project.podman("stop", "--time", "30", project.container("notifications"))
        placed = [orders.CreateOrder(new_order(email), timeout=30, credentials=tokens[email]) for email in customers]
        project.podman("start", project.container("notifications"))
        project.wait_healthy([project.container("notifications")])
        # and Envoy routes to it again (it may have come back on a new address)
        project.wait_routed(REPLICAS)
        assert len(placed) == 5
        for n in range(len(placed)):
            address = f"away-{n}@example.com"
            assert eventually(lambda a=address: [e for e in emails(project) if e["to"] == a]), f"no email for {address}"


def test_two_order_replicas_serve_and_the_event_stream_has_no_gaps(project):
    channel, orders, _, notifications = stubs(project)
    with channel:
        as_customer = customer(project, "replicas@example.com")
        placed = [
            orders.CreateOrder(new_order("replicas@example.com"), timeout=30, credentials=as_customer)
            for _ in range(40)
        ]
        served = [
            sum(
                json.loads(line).get("method") == "/shopmesh.orders.v1.OrderService/CreateOrder"
                for line in project.logs(project.container("orders", replica)).splitlines()
                if line.startswith("{")
            )
            for replica in (1, 2)
        ]
        assert all(count > 0 for count in served), f"CreateOrder calls per replica: {served}"

        # once the last order's event is recorded, every earlier one must be too
        last = placed[-1].order_id
        assert eventually(
            lambda: (
                notifications.ListNotifications(
                    notifications_pb2.ListNotificationsRequest(order_id=last), timeout=10, credentials=operator(project)
                ).notifications
            )
        ), "the last order's event never reached the Notification service"
        reply = notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(page_size=1000), timeout=10, credentials=operator(project)
        )
        sequences = sorted(n.event_sequence for n in reply.notifications)
        # one notification per event, every sequence from 1 up, none twice
        assert len(sequences) >= len(placed)
        assert sequences == list(range(1, len(sequences) + 1))


def test_orders_need_a_token_and_the_catalogue_does_not(project):
    channel, orders, inventory, _ = stubs(project)
    with channel:
        # anyone may browse
        inventory.ListProducts(inventory_pb2.ListProductsRequest(), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            orders.CreateOrder(new_order("anon@example.com"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            inventory.CreateProduct(
                inventory_pb2.CreateProductRequest(
                    product=inventory_pb2.Product(
                        product_id="COMPOSE-NOT-MINE",
                        title="Not mine",
                        price=money_pb2.Money(currency_code="EUR", units=1),
                        available=1,
                    )
                ),
                timeout=30,
                credentials=customer(project, "anon@example.com"),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(urllib.error.HTTPError) as refused_rest:
        rest(
            project,
            "POST",
            "/v1/orders",
            {"customerEmail": "anon@example.com", "items": [{"productId": PRODUCT, "quantity": 1}]},
        )
    assert refused_rest.value.code == 401
    assert json.loads(refused_rest.value.read())["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_the_published_port_speaks_only_tls(project):
    channel, _, inventory, _ = stubs(project)
    with channel:
        inventory.ListProducts(inventory_pb2.ListProductsRequest(), timeout=30)
    with grpc.insecure_channel(project.public) as plaintext:
        with pytest.raises(grpc.RpcError) as refused:
            inventory_pb2_grpc.InventoryServiceStub(plaintext).ListProducts(
                inventory_pb2.ListProductsRequest(), timeout=30
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises((OSError, http.client.HTTPException)):
        with urllib.request.urlopen(f"http://{project.public}/v1/products", timeout=15) as reply:
            reply.read()


def cluster_counters(project, counter: str) -> dict[str, int]:
    """counter (e.g. ssl.handshake) of each of Envoy's clusters, by cluster name."""
    return {
        name.removeprefix("cluster.").removesuffix(f".{counter}"): value
        for name, value in project.stats(counter).items()
        if name.startswith("cluster.") and name.endswith(f".{counter}")
    }


def mesh_listener_handshakes(project) -> int:
    return project.stats("ssl.handshake")[f"listener.{MESH_LISTENER}.ssl.handshake"]


def test_every_hop_inside_the_mesh_is_mutual_tls(project):
    # every connection Envoy opened to a ShopMesh service was a TLS handshake
    handshakes = cluster_counters(project, "ssl.handshake")
    connections = {
        name: count
        for name, count in cluster_counters(project, "upstream_cx_total").items()
        if count and name not in ("otel_collector", "jwks")
    }
    assert {"orders", "inventory", "notifications"} <= set(connections)
    assert all(handshakes.get(name, 0) > 0 for name in connections), (handshakes, connections)
    # and the services called Envoy's mesh listener over TLS too (Reserve, the event stream)
    assert mesh_listener_handshakes(project) > 0

    # a service's port and the mesh listener turn away plaintext and callers without a
    # certificate of the mesh CA; Envoy's own certificate is taken
    targets = {**SERVICE_ADDRESSES, "envoy": "127.0.0.1:8081"}
    seen = json.loads(project.python(project.container("envoy"), CALLERS, json.dumps(targets)))
    for name in SERVICE_ADDRESSES:
        assert seen[name] == {"plaintext": "UNAVAILABLE", "no certificate": "UNAVAILABLE", "envoy": "SERVING"}, name
    # the mesh listener: TLS let through, then RBAC decides (health is no mesh route)
    assert seen["envoy"]["plaintext"] == seen["envoy"]["no certificate"] == "UNAVAILABLE"
    assert seen["envoy"]["envoy"] != "UNAVAILABLE", seen["envoy"]


def certificate_in(project, container: str, name: str) -> x509.Certificate:
    """The certificate of identity name as mounted in container."""
    pem = project.podman("exec", container, "cat", f"{MESH_DIR}/{name}/cert.pem")
    return x509.load_pem_x509_certificate(pem.encode())


def envoy_presents(project, cert: x509.Certificate) -> bool:
    return any(
        int(chain.get("serial_number", "0"), 16) == cert.serial_number for chain in project.served_certificates()
    )


def wait_presented(project, cert: x509.Certificate, timeout: float = 30) -> bool:
    """Whether Envoy presents cert within timeout (it watches its identity's files)."""
    deadline = time.monotonic() + timeout
    while not envoy_presents(project, cert):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def own_ca(directory, uid: int) -> x509.Certificate:
    """An operator's CA in directory (ca.pem, ca-key.pem), readable by the image's user."""
    directory.mkdir()
    directory.chmod(0o755)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = credentials.ca_certificate(key, dt.datetime.now(dt.UTC), "Operator's own mesh CA", dt.timedelta(days=30))
    credentials.write_private_key(directory / "ca-key.pem", key)
    credentials.write_file(directory / "ca.pem", credentials.pem(cert))
    for name in ("ca.pem", "ca-key.pem"):
        os.chown(directory / name, uid, -1)
    return cert


def test_identities_rotate_and_take_the_operators_own_ca_while_everything_runs(
    project: Project, tmp_path: Path
) -> None:
    """compose.yaml's own instructions: `run --rm mesh-identity --rotate`, then an override
    file that signs with the operator's CA. Envoy presents its new certificate, and the
    services' health checks and calls through the mesh carry on on new connections, with
    nothing restarted but one Order replica (on purpose, after the first rotation)."""
    envoy = project.container("envoy")
    throughout = [envoy, *(project.container(name) for name in SERVICE_ADDRESSES)]
    started = project.podman("inspect", "--format", "{{.State.StartedAt}}", *throughout)
    first = {name: certificate_in(project, project.container(name), name) for name in SERVICE_ADDRESSES}
    first["envoy"] = certificate_in(project, envoy, "envoy")
    assert wait_presented(project, first["envoy"])

    project.compose("run", "--rm", "mesh-identity", "--rotate", timeout=300)
    rotated = {name: certificate_in(project, project.container(name), name) for name in first}
    assert all(rotated[name].serial_number != first[name].serial_number for name in first)
    assert all(rotated[name].issuer == first[name].issuer for name in first)
    assert wait_presented(project, rotated["envoy"]) and not envoy_presents(project, first["envoy"])
    # a replica started now serves its new certificate to Envoy's health checks, and is
    # routed to (stop and start: podman's restart passes over a container whose required
    # mesh-identity has exited; start runs mesh-identity again, which changes nothing now)
    project.podman("stop", "--time", "30", project.container("orders", 2))
    project.podman("start", project.container("orders", 2))
    project.wait_healthy([project.container("orders", 2)])
    project.wait_routed(REPLICAS)
    project.wait_resolvable(
        "envoy", [project.container(name) for name in SERVICE_ADDRESSES] + [project.container("orders", 2)]
    )

    # the override compose.yaml describes, with a CA made here and owned by the image's user
    uid = int(project.compose("run", "--rm", "--entrypoint", "id", "mesh-identity", "-u", timeout=300).split()[-1])
    ca = own_ca(tmp_path / "mesh-ca", uid)
    override = tmp_path / "compose.mesh-ca.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "mesh-identity": {
                        "entrypoint": [
                            "/opt/shopmesh/bin/python",
                            "-m",
                            "devmesh.mesh_identity",
                            "--ca-cert",
                            "/run/mesh-ca/ca.pem",
                            "--ca-key",
                            "/run/mesh-ca/ca-key.pem",
                        ],
                        "volumes": [f"{tmp_path / 'mesh-ca'}:/run/mesh-ca:ro"],
                    }
                }
            }
        )
    )
    handshakes = mesh_listener_handshakes(project)
    project.compose("run", "--rm", "mesh-identity", timeout=300, overrides=[override])
    signed = {name: certificate_in(project, project.container(name), name) for name in first}
    for cert in signed.values():
        cert.verify_directly_issued_by(ca)
    assert wait_presented(project, signed["envoy"]), project.served_certificates()

    # each service takes the new files on its next connection: its health check (as itself,
    # with a certificate of the new CA) passes, and its calls through Envoy's mesh listener
    # do (an order reserves stock: Orders to Inventory; Notifications follows the events)
    project.wait_healthy([project.container(s) for s in SERVICE_ADDRESSES] + [project.container("orders", 2)])
    channel, orders_stub, _, _ = stubs(project)
    with channel:
        placed = eventually(
            lambda: [
                orders_stub.CreateOrder(
                    new_order("own-ca@example.com"), timeout=30, credentials=customer(project, "own-ca@example.com")
                )
            ]
        )
        assert [(o.customer_email, o.status) for o in placed or []] == [
            ("own-ca@example.com", orders_pb2.ORDER_STATUS_PENDING)
        ]
    received = eventually(lambda: [e for e in emails(project) if e["to"] == "own-ca@example.com"])
    assert [e["subject"] for e in received] == [f"Order {placed[0].order_id[:8]} received"]
    assert mesh_listener_handshakes(project) > handshakes
    assert project.podman("inspect", "--format", "{{.State.StartedAt}}", *throughout) == started
