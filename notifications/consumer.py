"""Follows the Order service's event stream through Envoy's mesh listener and
records one notification per event, moving the stored cursor with it.

When the stream breaks (Orders or Envoy restarting), or the database is away for a
while (a restart, a write lock held past the busy timeout), it is opened again from the
stored cursor after a pause (meshkit.resume): a resume, not a retry, so nothing is
skipped and nothing recorded twice. An event no email can be written for is recorded as
FAILED with the reason, so that it does not hold up the events after it.
"""

import logging
from collections.abc import Callable

import grpc
from opentelemetry import trace

from meshkit import resume, telemetry
from meshkit.database import utcnow
from meshkit.protoconv import enum_name, money_from_proto
from notifications import domain
from notifications.storage import NotificationStore, RecordedEvent
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

RESUME_PAUSE_SECONDS = 1.0


def event_from_proto(event: orders_pb2.OrderEvent) -> domain.OrderEvent:
    order = event.order
    return domain.OrderEvent(
        sequence=event.sequence,
        order_id=order.order_id,
        customer_email=order.customer_email,
        status=enum_name(orders_pb2.OrderStatus, order.status),
        created=event.type == orders_pb2.OrderEvent.TYPE_CREATED,
        lines=tuple(
            domain.OrderLine(item.product_id, item.quantity, money_from_proto(item.unit_price)) for item in order.items
        ),
        total=money_from_proto(order.total),
    )


class OrderEventConsumer:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        store: NotificationStore,
        on_recorded: Callable[[], None],
        resume_pause: float = RESUME_PAUSE_SECONDS,
    ) -> None:
        self._stub = orders_pb2_grpc.OrderServiceStub(channel)
        self._store = store
        self._on_recorded = on_recorded
        self._resume_pause = resume_pause
        self._tracer = trace.get_tracer(__name__)

    async def run(self) -> None:
        await resume.follow("order event stream", self._store.cursor, self._open, self._record, self._resume_pause)

    def _open(
        self, cursor: int
    ) -> grpc.aio.UnaryStreamCall[orders_pb2.StreamOrderEventsRequest, orders_pb2.OrderEvent]:
        # wait_for_ready: while the mesh listener cannot be reached yet (Envoy still
        # starting, or restarting) the stream opens once it can, instead of failing.
        return self._stub.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=cursor), wait_for_ready=True
        )

    async def _record(self, events: list[orders_pb2.OrderEvent]) -> None:
        # A span of its own, linked to the trace of each order change.
        links = [link for event in events for link in telemetry.link_to(event.trace_parent)]
        with self._tracer.start_as_current_span(
            "record notifications",
            links=links,
            attributes={"shopmesh.event_sequences": [event.sequence for event in events]},
        ):
            await self._store.record([_recorded(event) for event in events], utcnow())
        self._on_recorded()


def _recorded(event: orders_pb2.OrderEvent) -> RecordedEvent:
    email, failure = _render(event)
    return RecordedEvent(event.sequence, event.order.order_id, email, event.trace_parent or None, failure)


def _render(event: orders_pb2.OrderEvent) -> tuple[domain.Email, str | None]:
    """The event's email, or what is kept of it and why none could be written."""
    try:
        return domain.render(event_from_proto(event)), None
    except Exception as error:  # noqa: BLE001 - pure code on this one event's data: only this event fails
        failure = f"no email could be written: {type(error).__name__}: {error}"
        log.error(
            "order event %s recorded as FAILED: %s",
            event.sequence,
            failure,
            extra={"order_id": event.order.order_id, "sequence": event.sequence},
        )
        return domain.unsendable(event.order.order_id, event.sequence, event.order.customer_email), failure
