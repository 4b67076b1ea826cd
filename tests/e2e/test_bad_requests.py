"""Requests that are too big or not what they claim to be get a client error that says
why, over REST and gRPC, and nothing is written."""

import grpc
import pytest

from shopmesh.orders.v1 import orders_pb2 as pb

# one product listed 10,000 times: each item is a problem of its own (about 400 KB of JSON)
MANY = 10_000


def test_ten_thousand_items_over_rest_are_a_bounded_invalid_argument(rest, new_product):
    product_id = new_product(5)
    before = rest("GET", f"/v1/products/{product_id}/stock").body
    reply = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "big@example.com", "items": [{"productId": product_id, "quantity": 1}] * MANY},
    )
    assert (reply.status, reply.body["code"]) == (400, 3), reply.body
    assert "must list at most 100 items" in reply.body["message"]
    violations = next(d for d in reply.body["details"] if d["@type"].endswith("BadRequest"))["fieldViolations"]
    assert len(violations) <= 21 and violations[-1]["description"].startswith("and ")
    assert rest("GET", f"/v1/products/{product_id}/stock").body == before


def test_ten_thousand_items_over_grpc_are_a_bounded_invalid_argument(public, new_product):
    product_id = new_product(5)
    request = pb.CreateOrderRequest(
        customer_email="big@example.com", items=[pb.OrderItemRequest(product_id=product_id, quantity=1)] * MANY
    )
    with pytest.raises(grpc.RpcError) as raised:
        public.orders.CreateOrder(request, timeout=15)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must list at most 100 items" in raised.value.details() and len(raised.value.details()) < 4096
