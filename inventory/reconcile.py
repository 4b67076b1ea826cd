"""Checks Inventory's books against the orders:

    python -m inventory.reconcile

with the Inventory service's own environment and identity (INVENTORY_DATABASE_URL, MESH_ADDRESS, MESH_TLS_DIR,
INVENTORY_RESERVATION_TTL_SECONDS). It reads Inventory's database and lists every order
through Envoy's mesh listener, prints each difference (a reservation that holds stock
for no order, a cancelled order whose stock is still held, a product whose units do not
add up), and exits 1 if there is one, 0 when the books balance. Run it on a quiet
system: an order placed during the check may show as a difference.
"""

import asyncio
import os
import sys
from collections.abc import Mapping

import grpc

from inventory import domain
from inventory.main import reservation_timing
from inventory.storage import InventoryStore
from meshkit import config, mesh_tls
from meshkit.database import Database, utcnow
from meshkit.protoconv import enum_name
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

PAGE_SIZE = 1000


async def all_orders(channel: grpc.aio.Channel) -> dict[str, domain.OrderView]:
    stub = orders_pb2_grpc.OrderServiceStub(channel)
    found, token = {}, ""
    while True:
        page = await stub.ListOrders(orders_pb2.ListOrdersRequest(page_size=PAGE_SIZE, page_token=token), timeout=30)
        for order in page.orders:
            status = enum_name(orders_pb2.OrderStatus, order.status)
            found[order.order_id] = domain.OrderView(
                order.order_id, status, {i.product_id: i.quantity for i in order.items}
            )
        token = page.next_page_token
        if not token:
            return found


async def check(env: Mapping[str, str]) -> list[str]:
    mesh = config.address(env, "MESH_ADDRESS", "127.0.0.1:8081")
    _, grace = reservation_timing(env)
    db = Database(config.database_url(env, "INVENTORY_DATABASE_URL", "inventory.db"))
    try:
        store = InventoryStore(db)
        # the books first: an order placed meanwhile then shows as an order without a
        # reservation, never as stock that vanished
        reservations, books = await store.reservations(), await store.books()
        async with mesh_tls.channel(mesh_tls.MeshTls.from_env(env, "inventory"), mesh) as channel:
            orders = await all_orders(channel)
    finally:
        await db.close()
    return domain.differences(orders, reservations, books, settled_by=utcnow() - grace)


def main() -> int:
    try:
        found = asyncio.run(check(os.environ))
    except config.ConfigError as error:
        print(f"reconcile: configuration error: {error}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as error:
        print(f"reconcile: cannot list the orders: {error.code().name} {error.details()}", file=sys.stderr)
        return 2
    for difference in found:
        print(difference)
    print(f"{len(found)} difference(s)" if found else "the books balance")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
