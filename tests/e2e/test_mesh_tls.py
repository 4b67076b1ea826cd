"""Mutual TLS on every hop inside the mesh, attacked from outside: a service's port refuses
plaintext and strangers' certificates, Envoy's mesh listener gives each internal RPC to the
one identity that needs it, caller headers count only from Envoy's certificate, and every
cluster Envoy calls speaks TLS."""

import json
import threading
import time

import grpc
import pytest
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh import client, mesh_identity
from meshkit import mesh_tls
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh, stubs_for
from tests.helpers.mesh_peers import der, presented

SERVICES = ("orders", "inventory", "notifications")
CLUSTERS = ("orders", "orders_streams", "orders_events", "inventory", "notifications")
ANN, BOB = "ann@example.com", "bob@example.com"
AS_BOB = (("x-shopmesh-edge", "public"), ("x-shopmesh-email", BOB), ("x-shopmesh-roles", "customer"))
INVENTORY, ORDERS = "/shopmesh.inventory.v1.InventoryService/", "/shopmesh.orders.v1.OrderService/"
# every internal RPC and who may call it on the mesh listener; a public one for contrast
MESH_METHODS = {
    INVENTORY + "ReserveStock": {"orders"},
    INVENTORY + "ReleaseStock": {"orders"},
    ORDERS + "StreamOrderEvents": {"notifications", "inventory"},
    # Inventory asks whether the order of an expired reservation exists; inventory.reconcile lists them all
    ORDERS + "GetOrder": {"inventory"},
    ORDERS + "ListOrders": {"inventory"},
    ORDERS + "CreateOrder": set(),
}


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def health(channel) -> None:
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> mesh_identity.MeshIdentity:
    """The same identities, names and all, from a CA the mesh never saw."""
    return mesh_identity.ensure(mesh_identity.MeshIdentity(tmp_path_factory.mktemp("stranger")))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_port_refuses_plaintext_and_another_cas_certificates(mesh, stranger, service):
    address = mesh.layout.address(f"{service.upper()}_LISTEN")
    with grpc.insecure_channel(address) as plaintext:
        assert code_of(lambda: health(plaintext)) == grpc.StatusCode.UNAVAILABLE
    for name in ("envoy", "operator"):
        forged = mesh_tls.MeshTls(stranger.directory(name), name)
        with grpc.secure_channel(
            address, forged.channel_credentials(), [mesh_tls.server_name_option(service)]
        ) as other:
            assert code_of(lambda: health(other)) == grpc.StatusCode.UNAVAILABLE
    with mesh.layout.channel(address, service, caller="operator") as operator:
        health(operator)


def test_the_mesh_listener_refuses_plaintext_and_another_cas_certificates(mesh, stranger):
    with grpc.insecure_channel(mesh.layout.mesh) as plaintext:
        assert code_of(lambda: health(plaintext)) == grpc.StatusCode.UNAVAILABLE
    forged = mesh_tls.MeshTls(stranger.directory("orders"), "orders")
    with grpc.secure_channel(
        mesh.layout.mesh, forged.channel_credentials(), [mesh_tls.server_name_option("envoy")]
    ) as other:
        request = inventory_pb2.ReserveStockRequest(reservation_id=unique("r"))
        assert (
            code_of(lambda: stubs_for(other).inventory.ReserveStock(request, timeout=5)) == grpc.StatusCode.UNAVAILABLE
        )


@pytest.mark.parametrize("caller", ["orders", "inventory", "notifications", "operator", "envoy"])
def test_each_internal_rpc_is_allowed_only_to_the_identity_that_needs_it(mesh, caller):
    """Orders' certificate asking for the order stream, or Notifications' reserving stock, is
    PERMISSION_DENIED; so is any public RPC on the mesh listener, whoever asks. An allowed
    call passes Envoy and gets the service's own answer to an empty request."""
    with mesh.layout.channel(mesh.layout.mesh, "envoy", caller=caller) as channel:
        for path, allowed in MESH_METHODS.items():
            code = empty_call(channel, path)
            if caller in allowed:
                assert code != grpc.StatusCode.PERMISSION_DENIED, (caller, path, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (caller, path, code)


def empty_call(channel: grpc.Channel, path: str) -> grpc.StatusCode:
    """How a call of path with an empty request ends (a stream: its first message)."""
    try:
        if path.endswith("StreamOrderEvents"):
            stream = channel.unary_stream(path)(b"", timeout=5)
            next(stream)
            stream.cancel()
        else:
            channel.unary_unary(path)(b"", timeout=5)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_forged_caller_headers_count_only_from_envoys_certificate(mesh, public, new_product):
    """Ann's order, asked for directly with headers naming Bob: from Envoy's certificate they
    are believed (Bob sees nothing), from an operator's they are ignored (the call acts for
    nobody in particular and finds Ann's order), and a service's own certificate may not
    call another service's port at all."""
    order = public.orders.CreateOrder(
        pb.CreateOrderRequest(customer_email=ANN, items=[pb.OrderItemRequest(product_id=new_product(1), quantity=1)]),
        timeout=10,
    )
    request = pb.GetOrderRequest(order_id=order.order_id)
    address = mesh.layout.address("ORDERS_LISTEN")
    with mesh.layout.channel(address, "orders", caller="envoy") as channel:
        assert (
            code_of(lambda: stubs_for(channel).orders.GetOrder(request, timeout=10, metadata=AS_BOB))
            == grpc.StatusCode.NOT_FOUND
        )
    with mesh.layout.channel(address, "orders", caller="operator") as channel:
        assert stubs_for(channel).orders.GetOrder(request, timeout=10, metadata=AS_BOB).customer_email == ANN
    for caller in ("inventory", "notifications"):
        with mesh.layout.channel(address, "orders", caller=caller) as channel:
            denied = code_of(lambda: stubs_for(channel).orders.GetOrder(request, timeout=10, metadata=AS_BOB))
            assert denied == grpc.StatusCode.PERMISSION_DENIED


def test_every_cluster_envoy_calls_speaks_tls(mesh, public, new_product):
    public.orders.CreateOrder(
        pb.CreateOrderRequest(customer_email=ANN, items=[pb.OrderItemRequest(product_id=new_product(1), quantity=1)]),
        timeout=10,
    )
    stats = json.loads(mesh.admin_get("/stats?format=json&filter=(ssl.handshake|upstream_cx_total)$"))["stats"]
    counters = {item["name"]: item["value"] for item in stats if "value" in item}
    for cluster in CLUSTERS:
        assert counters[f"cluster.{cluster}.ssl.handshake"] > 0, cluster
    assert counters[f"listener.{mesh.layout.mesh}.ssl.handshake".replace(":", "_")] > 0
    # and no upstream of a ShopMesh service can be reached without it
    config = json.loads(mesh.admin_get("/config_dump?resource=static_clusters"))
    for entry in config["configs"]:
        cluster = entry["cluster"]
        if cluster["name"] in CLUSTERS:
            socket_type = cluster["transport_socket"]["typed_config"]["@type"]
            assert socket_type.endswith("tls.v3.UpstreamTlsContext"), cluster["name"]


@pytest.fixture(scope="module")
def rotating_mesh(request, tmp_path_factory):
    """A mesh of its own: its identities are rotated."""
    yield from start_mesh(request, tmp_path_factory.mktemp("rotating"), "sqlite")


def test_every_certificate_and_the_ca_rotated_under_load_fail_no_call(rotating_mesh, cores_to_itself):
    """New certificates for every process, then a new CA, while customers place and read
    orders and a watch stays open: no call fails, and every new connection then shows the
    new certificates: Envoy's (file-watched SDS), each service's (new connections of its
    server) and the ones the services call Envoy with (their channels move to new files)."""
    mesh, layout = rotating_mesh, rotating_mesh.layout
    token = mesh.token(ANN, ["customer"])
    with client.channel(layout.public, mesh.token()) as operator_channel:
        product_id = unique("ROT")
        stubs_for(operator_channel).inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=product_id,
                    title="Rotation",
                    price=money_pb2.Money(currency_code="EUR", units=1),
                    available=100_000,
                )
            ),
            timeout=10,
        )
    done, calls, failures = threading.Event(), [], []

    def load() -> None:
        with client.channel(layout.public, token) as channel:
            orders = stubs_for(channel).orders
            while not done.is_set():
                try:
                    order = orders.CreateOrder(
                        pb.CreateOrderRequest(items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]),
                        timeout=10,
                    )
                    orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), timeout=10)
                    calls.append(2)
                except grpc.RpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")

    with client.channel(layout.public, token) as watch_channel:
        watched = stubs_for(watch_channel).orders.CreateOrder(
            pb.CreateOrderRequest(items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]), timeout=10
        )
        watch = stubs_for(watch_channel).orders.WatchOrder(pb.WatchOrderRequest(order_id=watched.order_id), timeout=60)
        assert next(watch).status == pb.ORDER_STATUS_PENDING
        loaders = [threading.Thread(target=load) for _ in range(4)]
        for thread in loaders:
            thread.start()
        try:
            time.sleep(2)
            old = {name: layout.tls(name).material().cert for name in mesh_identity.IDENTITIES}
            mesh_identity.ensure(layout.mesh_identity, rotate=True)
            # the services look for new files every RENEW_CHECK_SECONDS
            time.sleep(mesh_tls.RENEW_CHECK_SECONDS + 3)
            rotated = {name: layout.tls(name).material().cert for name in mesh_identity.IDENTITIES}
            # and a new CA, as `python -m devmesh.mesh_identity --rotate-ca` brings it
            mesh_identity.ensure(
                layout.mesh_identity, rotate_ca=True, settle=lambda: time.sleep(mesh_identity.SETTLE_SECONDS)
            )
            time.sleep(mesh_tls.RENEW_CHECK_SECONDS + 3)
        finally:
            done.set()
            for thread in loaders:
                thread.join(30)
        with client.channel(layout.public, mesh.token()) as operator_channel:
            stubs_for(operator_channel).orders.ConfirmOrder(
                pb.ConfirmOrderRequest(order_id=watched.order_id), timeout=10
            )
        assert next(watch).status == pb.ORDER_STATUS_CONFIRMED  # the watch lived through it
        watch.cancel()
    assert failures == [] and sum(calls) > 20, (len(calls), failures[:5])

    assert all(len({old[name], rotated[name], layout.tls(name).material().cert}) == 3 for name in old)
    operator = layout.tls("operator")
    for service in SERVICES:
        assert presented(layout.address(f"{service.upper()}_LISTEN"), operator, service) == der(layout.tls(service))
    assert presented(layout.mesh, layout.tls("orders"), "envoy") == der(layout.tls("envoy"))
    for service in SERVICES:
        assert "mesh identity reloaded; new calls use it" in mesh.log_path(service).read_text(), service
