"""Demo products for `make up`, loaded through Envoy only into an empty catalogue."""

from google.type import money_pb2

from devmesh import client
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc

DEMO_PRODUCTS = (
    ("WIDGET-1", "Widget", 9, 990_000_000, 100),
    ("GADGET-2", "Gadget", 24, 500_000_000, 25),
    ("GIZMO-3", "Gizmo", 4, 0, 5),
)


def load(public_address: str, operator_token: str) -> list[str]:
    """Creates the demo products if the catalogue is empty, as an operator; returns the ids created."""
    with client.channel(public_address, operator_token) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        if stub.ListProducts(inventory_pb2.ListProductsRequest(page_size=1), timeout=10).products:
            return []
        for product_id, title, units, nanos, stock in DEMO_PRODUCTS:
            stub.CreateProduct(
                inventory_pb2.CreateProductRequest(
                    product=inventory_pb2.Product(
                        product_id=product_id,
                        title=title,
                        price=money_pb2.Money(currency_code="EUR", units=units, nanos=nanos),
                        available=stock,
                    )
                ),
                timeout=10,
            )
    return [p[0] for p in DEMO_PRODUCTS]
