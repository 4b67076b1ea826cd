"""Calls the tests make through generated stubs, and what they read from the answers."""

import time

from shopmesh.inventory.v1 import inventory_pb2
from tests.helpers.mesh import Stubs


def create_product(stubs: Stubs, available: int = 100_000) -> str:
    """Creates a product at 1 EUR with available units and an id of its own; returns the id."""
    product_id = f"F-{time.monotonic_ns()}"
    stubs.inventory.CreateProduct(
        inventory_pb2.CreateProductRequest(
            product=inventory_pb2.Product(
                product_id=product_id, title="fault", price={"currency_code": "EUR", "units": 1}, available=available
            )
        ),
        timeout=10,
    )
    return product_id
