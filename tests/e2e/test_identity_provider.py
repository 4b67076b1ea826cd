"""A real identity provider instead of the development key: Envoy fetches the JWKS from
SHOPMESH_JWKS_URL (served here by the test over https, with a CA of its own; a plain
http URL is rendered without TLS, see tests/unit/test_envoy_config.py), and reads roles
from a nested claim as Keycloak writes them."""

import datetime as dt
import functools
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devmesh import client, credentials
from devmesh import token as tokens
from devmesh.envoy_config import params_from_env
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh, stubs_for

ISSUER = "https://idp.test/realms/shop"


class JwksHandler(BaseHTTPRequestHandler):
    def __init__(self, jwks: bytes, served: list, *args) -> None:
        self.jwks, self.served = jwks, served
        super().__init__(*args)

    def do_GET(self) -> None:
        self.served.append(self.path)
        self.send_response(200 if self.path == "/certs" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.jwks if self.path == "/certs" else b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module", params=["https"])
def provider(request, tmp_path_factory):
    """A JWKS endpoint holding one key of the provider's own; yields (url, key, CA, requests seen)."""
    key = ec.generate_private_key(ec.SECP256R1())
    served: list[str] = []
    handler = functools.partial(JwksHandler, json.dumps(credentials.jwks_of(key.public_key())).encode(), served)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # its certificate: for 127.0.0.1, from a CA of its own
    tls = credentials.ensure(credentials.Credentials(tmp_path_factory.mktemp("idp")))
    if request.param == "https":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.edge_cert, tls.edge_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{request.param}://127.0.0.1:{server.server_address[1]}/certs", key, tls.ca, served
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def idp_mesh(request, provider, tmp_path_factory):
    url, _, ca, _ = provider
    env = {
        "SHOPMESH_JWKS_URL": url,
        "SHOPMESH_JWKS_CA": str(ca),
        "SHOPMESH_JWT_ISSUER": ISSUER,
        "SHOPMESH_JWT_ROLES_CLAIM": "realm_access.roles",
    }
    yield from start_mesh(request, tmp_path_factory.mktemp("idp-mesh"), "sqlite", env)


def test_tokens_of_the_provider_are_accepted_and_the_development_key_is_not(idp_mesh, provider):
    mesh, (_, key, _, served) = idp_mesh, provider
    params = params_from_env(mesh.layout.env)
    operator = tokens.mint(key, params, "ops@shop.test", ["operator"])
    customer = tokens.mint(key, params, "ann@shop.test", ["customer"])
    product_id = unique("IDP")
    with client.channel(mesh.layout.public, operator) as channel:
        stubs_for(channel).inventory.CreateProduct(
            inventory_pb2.CreateProductRequest(
                product={
                    "product_id": product_id,
                    "title": "idp",
                    "price": {"currency_code": "EUR", "units": 1},
                    "available": 3,
                }
            ),
            timeout=10,
        )
    with client.channel(mesh.layout.public, customer) as channel:
        order = stubs_for(channel).orders.CreateOrder(
            pb.CreateOrderRequest(items=[pb.OrderItemRequest(product_id=product_id, quantity=1)]), timeout=10
        )
        assert order.customer_email == "ann@shop.test"
        # a customer of the provider is still a customer: no operator's methods
        with pytest.raises(grpc.RpcError) as raised:
            stubs_for(channel).orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id), timeout=10)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # the development key of the data directory is not what Envoy trusts now
    with client.channel(mesh.layout.public, mesh.token()) as channel, pytest.raises(grpc.RpcError) as raised:
        stubs_for(channel).orders.ListOrders(pb.ListOrdersRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "/certs" in served
    fetched = re.search(r"jwks_fetch_success: (\d+)", mesh.admin_get("/stats?filter=jwks_fetch_success"))
    assert int(fetched.group(1)) >= 1


def test_an_expired_provider_token_is_refused(idp_mesh, provider):
    mesh, (_, key, _, _) = idp_mesh, provider
    expired = tokens.mint(
        key,
        params_from_env(mesh.layout.env),
        "ops@shop.test",
        ["operator"],
        60,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    with client.channel(mesh.layout.public, expired) as channel, pytest.raises(grpc.RpcError) as raised:
        stubs_for(channel).orders.ListOrders(pb.ListOrdersRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
