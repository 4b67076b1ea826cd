"""Request messages the tests send again and again, built in one place."""

from shopmesh.orders.v1 import orders_pb2


def order_request(product_id: str, quantity: int = 1) -> orders_pb2.CreateOrderRequest:
    """An order of quantity units of one product, for fault@example.com."""
    return orders_pb2.CreateOrderRequest(
        customer_email="fault@example.com",
        items=[orders_pb2.OrderItemRequest(product_id=product_id, quantity=quantity)],
    )
