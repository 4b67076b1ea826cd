"""Domain enums to API enums by name: every member has its value, checked when the map is built."""

import enum

import pytest
from google.protobuf import struct_pb2

from inventory.domain import ReservationStatus
from meshkit.protoconv import enum_name, enum_to_proto
from notifications.domain import NotificationStatus
from orders.domain import EventType, OrderStatus
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.notifications.v1 import notifications_pb2
from shopmesh.orders.v1 import orders_pb2


def test_each_member_maps_to_the_value_of_its_name_after_the_enums_prefix():
    assert enum_to_proto(OrderStatus, orders_pb2.OrderStatus) == {
        OrderStatus.PENDING: orders_pb2.ORDER_STATUS_PENDING,
        OrderStatus.CONFIRMED: orders_pb2.ORDER_STATUS_CONFIRMED,
        OrderStatus.SHIPPED: orders_pb2.ORDER_STATUS_SHIPPED,
        OrderStatus.CANCELLED: orders_pb2.ORDER_STATUS_CANCELLED,
    }
    assert enum_to_proto(EventType, orders_pb2.OrderEvent.Type) == {
        EventType.CREATED: orders_pb2.OrderEvent.TYPE_CREATED,
        EventType.STATUS_CHANGED: orders_pb2.OrderEvent.TYPE_STATUS_CHANGED,
    }


@pytest.mark.parametrize(
    "members, proto_enum",
    [
        (ReservationStatus, inventory_pb2.Reservation.Status),
        (NotificationStatus, notifications_pb2.Notification.Status),
    ],
)
def test_every_domain_status_has_its_api_value(members, proto_enum):
    mapped = enum_to_proto(members, proto_enum)
    assert {proto_enum.Name(value) for value in mapped.values()} == {f"STATUS_{m.name}" for m in members}


def test_a_member_without_a_value_in_the_api_fails_when_the_map_is_built():
    class Status(enum.Enum):
        PENDING = "PENDING"
        RETURNED = "RETURNED"

    with pytest.raises(ValueError) as raised:
        enum_to_proto(Status, orders_pb2.OrderStatus)
    assert str(raised.value) == (
        "shopmesh.orders.v1.OrderStatus has no value for Status.RETURNED (expected ORDER_STATUS_RETURNED)"
    )


def test_an_enum_whose_zero_value_names_no_prefix_is_refused():
    class Null(enum.Enum):
        VALUE = "VALUE"

    with pytest.raises(ValueError, match=r"^google.protobuf.NullValue's zero value NULL_VALUE is not named"):
        enum_to_proto(Null, struct_pb2.NullValue)


def test_a_value_is_named_without_the_enums_prefix():
    assert enum_name(orders_pb2.OrderStatus, orders_pb2.ORDER_STATUS_CANCELLED) == "CANCELLED"
    assert enum_name(orders_pb2.OrderEvent.Type, orders_pb2.OrderEvent.TYPE_STATUS_CHANGED) == "STATUS_CHANGED"
    assert enum_name(orders_pb2.OrderStatus, orders_pb2.ORDER_STATUS_UNSPECIFIED) == "UNSPECIFIED"
    with pytest.raises(ValueError, match="has no name defined for value 99"):
        enum_name(orders_pb2.OrderStatus, 99)
