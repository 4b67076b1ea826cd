"""Calls the tests make through generated stubs, and what they read from the answers."""

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message
from grpc_status import rpc_status

from shopmesh.inventory.v1 import inventory_pb2
from tests.helpers.in_process import Running
from tests.helpers.mesh import Stubs

Detail = TypeVar("Detail", bound=message.Message)


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


def details(error: grpc.aio.AioRpcError, kind: type[Detail]) -> list[Detail]:
    """The error's google.rpc.Status details of one kind (BadRequest, PreconditionFailure...)."""
    found = []
    for detail in rpc_status.from_call(error).details:
        unpacked = kind()
        if detail.Unpack(unpacked):
            found.append(unpacked)
    return found


async def available(inventory: Running, product_id: str) -> int:
    """Units of product_id free to reserve, as CheckStock tells them."""
    return int((await inventory.stub.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id))).available)


async def stock_is(inventory: Running, product_id: str, units: int) -> bool:
    return await available(inventory, product_id) == units


async def all_pages(
    list_call: Callable[[Any], Awaitable[Any]], request_for_token: Callable[[str], Any], items: str
) -> list[Any]:
    """Every item a paged List RPC returns, following next_page_token to the end."""
    found: list[Any] = []
    token = ""
    while True:
        page = await list_call(request_for_token(token))
        found += getattr(page, items)
        token = page.next_page_token
        if not token:
            return found
