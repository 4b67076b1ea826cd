"""An app of a shop's customer, using only the shopmesh-api package: it tries to order more
than is in stock (FAILED_PRECONDITION, with what is short), places an order, reads it back,
and watches it live until it ends, cancelling it after its first update.

    pip install shopmesh_api-0.1.0-py3-none-any.whl
    python shop_client.py --address 127.0.0.1:8443 --ca ca.pem --token "$ANN" --product WIDGET-1
"""

import argparse
import sys

import grpc
from google.rpc import error_details_pb2

from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc
from shopmesh_api import channel, details_of

FINAL = (orders_pb2.ORDER_STATUS_SHIPPED, orders_pb2.ORDER_STATUS_CANCELLED)


def order_of(product_id: str, quantity: int) -> orders_pb2.CreateOrderRequest:
    # customer_email left empty: a customer orders for the email of their token
    return orders_pb2.CreateOrderRequest(items=[orders_pb2.OrderItemRequest(product_id=product_id, quantity=quantity)])


def too_many(orders: orders_pb2_grpc.OrderServiceStub, product_id: str) -> list[str]:
    """What a refusal for lack of stock says: one line per product that is short."""
    try:
        orders.CreateOrder(order_of(product_id, 1_000_000), timeout=10)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return [
            f"{violation.type} {violation.subject}: {violation.description}"
            for failure in details_of(error, error_details_pb2.PreconditionFailure)
            for violation in failure.violations
        ]
    raise SystemExit("a million units were accepted")


def place_and_watch(orders: orders_pb2_grpc.OrderServiceStub, product_id: str) -> list[str]:
    """The order's statuses as it lives: placed, read back, watched until it ends."""
    placed = orders.CreateOrder(order_of(product_id, 1), timeout=10)
    read = orders.GetOrder(orders_pb2.GetOrderRequest(order_id=placed.order_id), timeout=10)
    seen = [orders_pb2.OrderStatus.Name(read.status)]
    for update in orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=placed.order_id), timeout=30):
        seen.append(orders_pb2.OrderStatus.Name(update.status))
        if update.status in FINAL:
            break
        if update.status == orders_pb2.ORDER_STATUS_PENDING:
            orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=placed.order_id), timeout=10)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="Envoy's public listener, host:port")
    parser.add_argument("--token", required=True, help="a customer's bearer token")
    parser.add_argument("--product", required=True, help="a product id in the catalogue")
    parser.add_argument("--ca", help="CA of the listener's certificate (plaintext on loopback without it)")
    args = parser.parse_args(argv)
    with channel(args.address, args.token, args.ca) as ch:
        orders = orders_pb2_grpc.OrderServiceStub(ch)
        for line in too_many(orders, args.product):
            print(f"refused: {line}")
        print("order:", " -> ".join(place_and_watch(orders, args.product)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
