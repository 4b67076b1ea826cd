"""The Order service's domain values as their API messages: written once, for the
servicer's replies and for the serialized order the store keeps with each order."""

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from google.protobuf.message import Message

from meshkit.protoconv import enum_to_proto, money_to_proto, timestamp
from orders import domain
from shopmesh.orders.v1 import orders_pb2

STATUS_TO_PROTO = enum_to_proto(domain.OrderStatus, orders_pb2.OrderStatus)
EVENT_TYPE_TO_PROTO = enum_to_proto(domain.EventType, orders_pb2.OrderEvent.Type)

Built = TypeVar("Built", bound=Message)


def order_to_proto(order: domain.Order) -> orders_pb2.Order:
    """The Order message GetOrder answers with, WatchOrder sends and an event carries."""
    return orders_pb2.Order(
        order_id=order.order_id,
        customer_email=order.customer_email,
        items=[
            orders_pb2.OrderItem(
                product_id=line.product_id, quantity=line.quantity, unit_price=money_to_proto(line.unit_price)
            )
            for line in order.lines
        ],
        status=STATUS_TO_PROTO[order.status],
        total=money_to_proto(order.total),
        create_time=timestamp(order.create_time),
        update_time=timestamp(order.update_time),
    )


def serialized(order: domain.Order) -> bytes:
    """The order as GetOrder answers it, in protobuf's wire form."""
    return order_to_proto(order).SerializeToString()


def event_to_proto(event: domain.OrderEvent) -> orders_pb2.OrderEvent:
    """The OrderEvent message StreamOrderEvents sends."""
    return orders_pb2.OrderEvent(
        sequence=event.sequence,
        type=EVENT_TYPE_TO_PROTO[event.type],
        order=order_to_proto(event.order),
        previous_status=(
            STATUS_TO_PROTO[event.previous_status] if event.previous_status else orders_pb2.ORDER_STATUS_UNSPECIFIED
        ),
        event_time=timestamp(event.event_time),
        trace_parent=event.trace_parent or "",
    )


class RecentMessages(Generic[Built]):
    """A message of each recent event, built once (by build) for all the streams that send
    it: a change of an order watched 10,000 times is one conversion, not 10,000, and an event
    is converted once for all the services following the stream."""

    def __init__(self, build: Callable[[domain.OrderEvent], Built], size: int = 1024) -> None:
        self._build = build
        self._size = size
        self._messages: OrderedDict[int, Built] = OrderedDict()

    def of(self, event: domain.OrderEvent) -> Built:
        message = self._messages.get(event.sequence)
        if message is None:
            message = self._messages[event.sequence] = self._build(event)
            if len(self._messages) > self._size:
                self._messages.popitem(last=False)
        return message
