"""The Order service's messages: a change's Order message is built once for all its watchers."""

import datetime as dt

from meshkit.money import Money
from orders import domain
from orders.protos import RecentMessages, order_to_proto

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _event(sequence: int) -> domain.OrderEvent:
    order = domain.Order("O-1", "ann@example.com", (), domain.OrderStatus.CONFIRMED, Money("EUR", 0), CREATED, CREATED)
    return domain.OrderEvent(sequence, domain.EventType.STATUS_CHANGED, order, None, CREATED, None)


def test_a_change_is_converted_once_for_all_its_watchers():
    events = [_event(sequence) for sequence in (1, 2, 3)]
    orders = RecentMessages(lambda event: order_to_proto(event.order), size=2)
    first = orders.of(events[0])
    assert orders.of(events[0]) is first and first == order_to_proto(events[0].order)
    orders.of(events[1])
    orders.of(events[2])  # the oldest is dropped: built again when asked for
    assert orders.of(events[0]) is not first
