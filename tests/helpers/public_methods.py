"""Calling one public method as a client of any kind would: gRPC with the generated
messages, gRPC-Web as a browser frames it, and REST as its google.api.http rule maps
it. Every call answers with the gRPC code it ended with (REST's body carries it too),
so that one table of expectations covers all three."""

import json
import struct
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import message as proto_message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.notifications.v1 import notifications_pb2
from shopmesh.orders.v1 import orders_pb2

HTTP_TO_CODE = {
    200: grpc.StatusCode.OK,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
}
CODES = {code.value[0]: code for code in grpc.StatusCode}
ORIGIN = "http://shop.example"


@dataclass(frozen=True)
class Method:
    """One public method: its gRPC path, kind, messages, and REST mapping (None: none)."""

    path: str
    request: proto_message.Message
    response: type
    streaming: bool = False
    rest: tuple[str, str, dict[str, object] | None] | None = None


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    http_status: int | None = None
    body: object = None
    headers: Mapping[str, str] | None = None


def methods(product_id: str, order_id: str, email: str) -> dict[str, Method]:
    """Every public method, called on product_id and on order_id (an order of email)."""
    o, i, n = (
        "/shopmesh.orders.v1.OrderService/",
        "/shopmesh.inventory.v1.InventoryService/",
        "/shopmesh.notifications.v1.NotificationService/",
    )
    item = {"productId": product_id, "quantity": 1}
    new_id = f"{product_id}-{uuid.uuid4().hex[:6].upper()}"  # a product that does not exist yet
    return {
        "ListProducts": Method(
            i + "ListProducts",
            inventory_pb2.ListProductsRequest(page_size=1),
            inventory_pb2.ListProductsResponse,
            rest=("GET", "/v1/products?pageSize=1", None),
        ),
        "GetProduct": Method(
            i + "GetProduct",
            inventory_pb2.GetProductRequest(product_id=product_id),
            inventory_pb2.Product,
            rest=("GET", f"/v1/products/{product_id}", None),
        ),
        "CheckStock": Method(
            i + "CheckStock",
            inventory_pb2.CheckStockRequest(product_id=product_id),
            inventory_pb2.CheckStockResponse,
            rest=("GET", f"/v1/products/{product_id}/stock", None),
        ),
        "CreateProduct": Method(
            i + "CreateProduct",
            inventory_pb2.CreateProductRequest(
                product=inventory_pb2.Product(
                    product_id=new_id, title="x", price={"currency_code": "EUR", "units": 1}, available=1
                )
            ),
            inventory_pb2.Product,
            rest=(
                "POST",
                "/v1/products",
                {"productId": new_id, "title": "x", "price": {"currencyCode": "EUR", "units": "1"}, "available": "1"},
            ),
        ),
        "RestockProduct": Method(
            i + "RestockProduct",
            inventory_pb2.RestockProductRequest(product_id=product_id, quantity=1),
            inventory_pb2.Product,
            rest=("POST", f"/v1/products/{product_id}:restock", {"quantity": "1"}),
        ),
        "CreateOrder": Method(
            o + "CreateOrder",
            orders_pb2.CreateOrderRequest(
                customer_email=email, items=[orders_pb2.OrderItemRequest(product_id=product_id, quantity=1)]
            ),
            orders_pb2.Order,
            rest=("POST", "/v1/orders", {"customerEmail": email, "items": [item]}),
        ),
        "GetOrder": Method(
            o + "GetOrder",
            orders_pb2.GetOrderRequest(order_id=order_id),
            orders_pb2.Order,
            rest=("GET", f"/v1/orders/{order_id}", None),
        ),
        "ListOrders": Method(
            o + "ListOrders",
            orders_pb2.ListOrdersRequest(customer_email=email),
            orders_pb2.ListOrdersResponse,
            rest=("GET", f"/v1/orders?customerEmail={email}", None),
        ),
        "WatchOrder": Method(
            o + "WatchOrder",
            orders_pb2.WatchOrderRequest(order_id=order_id),
            orders_pb2.Order,
            streaming=True,
            rest=("GET", f"/v1/orders/{order_id}:watch", None),
        ),
        "CancelOrder": Method(
            o + "CancelOrder",
            orders_pb2.CancelOrderRequest(order_id=order_id),
            orders_pb2.Order,
            rest=("POST", f"/v1/orders/{order_id}:cancel", None),
        ),
        "ConfirmOrder": Method(
            o + "ConfirmOrder",
            orders_pb2.ConfirmOrderRequest(order_id=order_id),
            orders_pb2.Order,
            rest=("POST", f"/v1/orders/{order_id}:confirm", None),
        ),
        "ShipOrder": Method(
            o + "ShipOrder",
            orders_pb2.ShipOrderRequest(order_id=order_id),
            orders_pb2.Order,
            rest=("POST", f"/v1/orders/{order_id}:ship", None),
        ),
        "ListNotifications": Method(
            n + "ListNotifications",
            notifications_pb2.ListNotificationsRequest(order_id=order_id),
            notifications_pb2.ListNotificationsResponse,
            rest=("GET", f"/v1/notifications?orderId={order_id}", None),
        ),
        "Health": Method(
            "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse
        ),
        "Reflection": Method(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionResponse,
            streaming=True,
        ),
    }


def call_grpc(address: str, method: Method, metadata: list[tuple[str, str]]) -> Outcome:
    with grpc.insecure_channel(address) as channel:
        options = {
            "request_serializer": type(method.request).SerializeToString,
            "response_deserializer": method.response.FromString,
        }
        try:
            if method.path.endswith("ServerReflectionInfo"):
                call = channel.stream_stream(method.path, **options)(
                    iter([method.request]), metadata=metadata, timeout=10
                )
                reply = next(call)
                call.cancel()
            elif method.streaming:
                call = channel.unary_stream(method.path, **options)(method.request, metadata=metadata, timeout=10)
                reply = next(call)
                call.cancel()
            else:
                reply = channel.unary_unary(method.path, **options)(method.request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return Outcome(error.code(), body=error.details())
    return Outcome(grpc.StatusCode.OK, body=reply)


def call_grpc_web(address: str, method: Method, metadata: list[tuple[str, str]]) -> Outcome:
    """A gRPC-Web call as a browser page on another origin makes it."""
    payload = method.request.SerializeToString()
    request = urllib.request.Request(
        f"http://{address}{method.path}",
        data=struct.pack(">BI", 0, len(payload)) + payload,
        method="POST",
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": ORIGIN, **dict(metadata)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, headers = reply.status, {k.lower(): v for k, v in reply.headers.items()}
            # a stream stays open: its first data frame is all we need
            body = reply.read(5)
            if len(body) == 5 and not body[0] & 0x80:
                return Outcome(grpc.StatusCode.OK, status, headers=headers)
            body += reply.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
    code = headers.get("grpc-status")
    if code is None and body[:1] and body[0] & 0x80:  # trailers in the body's trailer frame
        trailers = dict(line.split(":", 1) for line in body[5:].decode().split("\r\n") if ":" in line)
        code = trailers.get("grpc-status")
    return Outcome(CODES[int(code)] if code is not None else HTTP_TO_CODE[status], status, headers=headers)


def call_rest(address: str, method: Method, metadata: list[tuple[str, str]]) -> Outcome:
    verb, path, body = method.rest
    request = urllib.request.Request(
        f"http://{address}{path}",
        data=None if body is None and verb == "GET" else json.dumps(body or {}).encode(),
        method=verb,
        headers={"content-type": "application/json", **dict(metadata)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, headers = reply.status, {k.lower(): v for k, v in reply.headers.items()}
            raw = reply.readline() if method.streaming else reply.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
    if method.streaming and status == 200:
        parsed = json.loads(raw.decode().removeprefix("data:"))
    else:
        parsed = json.loads(raw) if raw else None
    code = grpc.StatusCode.OK if status == 200 else CODES[parsed["code"]]
    return Outcome(code, status, parsed, headers)


PROTOCOLS: dict[str, Callable[[str, Method, list[tuple[str, str]]], Outcome]] = {
    "grpc": call_grpc,
    "grpc-web": call_grpc_web,
    "rest": call_rest,
}
