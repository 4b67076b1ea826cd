"""Request messages the tests send again and again, built in one place."""

from google.type import money_pb2

from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2


def product(
    product_id: str, available: int, units: int = 5, nanos: int = 0, currency: str = "EUR"
) -> inventory_pb2.CreateProductRequest:
    """A new product with available units at the price units.nanos in currency."""
    return inventory_pb2.CreateProductRequest(
        product=inventory_pb2.Product(
            product_id=product_id,
            title=f"Product {product_id}",
            price=money_pb2.Money(currency_code=currency, units=units, nanos=nanos),
            available=available,
        )
    )


def create(email: str = "ann@example.com", request_id: str = "", **items: int) -> orders_pb2.CreateOrderRequest:
    """An order of email with items given as product_id=quantity (an underscore in a
    keyword stands for a dash in the product id: B_1=2 orders two of B-1)."""
    return orders_pb2.CreateOrderRequest(
        customer_email=email,
        items=[orders_pb2.OrderItemRequest(product_id=p.replace("_", "-"), quantity=q) for p, q in items.items()],
        request_id=request_id,
    )


def order_request(product_id: str, quantity: int = 1) -> orders_pb2.CreateOrderRequest:
    """An order of quantity units of one product, for fault@example.com."""
    return orders_pb2.CreateOrderRequest(
        customer_email="fault@example.com",
        items=[orders_pb2.OrderItemRequest(product_id=product_id, quantity=quantity)],
    )
