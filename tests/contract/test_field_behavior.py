"""Every field a client sends or reads as part of a resource says how it behaves
(google.api.field_behavior: REQUIRED, OPTIONAL, OUTPUT_ONLY, ...), so generated clients and
documentation tell callers what they must give and what the service fills in. Responses
that only wrap a page or a stream item (List*Response, CheckStockResponse, OrderEvent) carry
none, as AIP-203 leaves them."""

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor

from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.notifications.v1 import notifications_pb2
from shopmesh.orders.v1 import orders_pb2

MODULES = (orders_pb2, inventory_pb2, notifications_pb2)
RESPONSES = {"shopmesh.orders.v1.OrderEvent", "shopmesh.inventory.v1.CheckStockResponse"}


def requests_and_resources() -> list[Descriptor]:
    return [
        message
        for module in MODULES
        for message in module.DESCRIPTOR.message_types_by_name.values()
        if not message.name.endswith("Response") and message.full_name not in RESPONSES
    ]


def test_every_request_and_resource_field_has_a_field_behavior() -> None:
    unmarked = [
        f"{message.full_name}.{field.name}"
        for message in requests_and_resources()
        for field in message.fields
        if not field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    ]
    assert unmarked == []


def test_the_check_covers_every_request_and_resource() -> None:
    names = {message.name for message in requests_and_resources()}
    assert {"Order", "OrderItem", "CreateOrderRequest", "Product", "Reservation", "Notification"} <= names
