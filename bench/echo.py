"""The benchmark's anchor: the least a grpc.aio server can do per call.

It answers OrderService.GetOrder by echoing the requested id, and
InventoryService.GetProduct likewise, with no interceptor, logging, database or
validation, so the same request reaches it directly or through an Envoy rendered
from ShopMesh's own template (same routes, same filters, REST included). The two
methods differ at the edge only: GetOrder needs a customer's token, which Envoy
verifies (jwt_authn) and judges (rbac), while anyone may call GetProduct without
one; that is how the benchmark measures what the token check costs Envoy.
Health is SERVING for every ShopMesh service name, so that Envoy's active health
checks pass for all three clusters pointed here.

Like ShopMesh's services, it serves mutual TLS: its certificate (made by the benchmark,
signed by the mesh CA and naming all three services, so that each of Envoy's clusters
takes it) and a client certificate of the CA in ca.pem required of every caller. The
optional second address serves the same in plaintext (h2c), for the benchmark only:
h2load cannot present a client certificate, and an Envoy with plaintext upstreams is
what mutual TLS is measured against.

    python -m bench.echo 127.0.0.1:50099 cert.pem key.pem ca.pem [127.0.0.1:50100]
"""

import asyncio
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

SERVICE_NAMES = (
    "",
    "shopmesh.orders.v1.OrderService",
    "shopmesh.inventory.v1.InventoryService",
    "shopmesh.notifications.v1.NotificationService",
)


class EchoOrders(orders_pb2_grpc.OrderServiceServicer):
    async def GetOrder(self, request, context):
        return orders_pb2.Order(order_id=request.order_id)


class EchoInventory(inventory_pb2_grpc.InventoryServiceServicer):
    async def GetProduct(self, request, context):
        return inventory_pb2.Product(product_id=request.product_id)


async def serve(address: str, cert: Path, key: Path, ca: Path, plaintext: str | None = None) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    orders_pb2_grpc.add_OrderServiceServicer_to_server(EchoOrders(), server)
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(EchoInventory(), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    tls = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=ca.read_bytes(), require_client_auth=True
    )
    server.add_secure_port(address, tls)
    if plaintext:
        server.add_insecure_port(plaintext)
    await server.start()
    for name in SERVICE_NAMES:
        await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: python -m bench.echo HOST:PORT CERT KEY CA [PLAINTEXT_HOST:PORT]")
    address, cert, key, ca, *plaintext = sys.argv[1:]
    try:
        asyncio.run(serve(address, Path(cert), Path(key), Path(ca), *plaintext))
    except KeyboardInterrupt:
        pass
