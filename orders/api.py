"""OrderService servicer: request -> workflow -> response, nothing more."""

import datetime as dt

from meshkit import pagination, request_context
from meshkit.errors import FieldViolation, InvalidArgument, Unavailable, Validator
from orders import domain
from orders.feed import LAGGED, ChangeFeed
from orders.protos import RecentMessages, event_to_proto, order_to_proto
from orders.storage import OrderStore
from orders.watches import OpenWatches, client_key
from orders.workflow import OrderWorkflow, visible
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

MAX_ORDER_ID_LENGTH = 64
BACKLOG_PAGE = 500


def _order_id(request) -> str:
    v = Validator()
    v.check(bool(request.order_id), "order_id", "must not be empty")
    v.check(len(request.order_id) <= MAX_ORDER_ID_LENGTH, "order_id", "is too long to be an order id")
    v.raise_if_any()
    return request.order_id


def _list_key(key: list) -> tuple[dt.datetime, str]:
    """The (create_time, order_id) a ListOrders page token carries."""
    time, order_id = key
    parsed = dt.datetime.fromisoformat(time)
    if parsed.tzinfo is None:
        raise ValueError("naive time in page token")
    return parsed, str(order_id)


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, workflow: OrderWorkflow, store: OrderStore, feed: ChangeFeed, watches: OpenWatches) -> None:
        self._workflow = workflow
        self._store = store
        self._feed = feed
        self._watches = watches
        # the messages of live events, built once for every stream that sends them
        self._watched = RecentMessages(lambda event: order_to_proto(event.order))
        self._followed = RecentMessages(event_to_proto)

    async def CreateOrder(self, request, context):
        # a customer orders for themselves: an empty customer_email means the token's
        new = domain.validate_new_order(
            request_context.caller().acting_for(request.customer_email),
            [domain.ItemRequest(item.product_id, item.quantity) for item in request.items],
            request.request_id,
        )
        return order_to_proto(await self._workflow.create(new))

    async def GetOrder(self, request, context):
        return orders_pb2.Order.FromString(await self._workflow.get(_order_id(request), request_context.caller()))

    async def ListOrders(self, request, context):
        # a customer lists their own orders; an operator anyone's, or all
        customer_email = request_context.caller().acting_for(request.customer_email)
        filters = {"customer_email": customer_email}
        size = pagination.page_size(request.page_size)
        after = pagination.decode(request.page_token, filters, _list_key)
        orders = await self._store.page(customer_email, after, size + 1)
        page, token = pagination.cut(orders, size, filters, lambda last: [last.create_time.isoformat(), last.order_id])
        return orders_pb2.ListOrdersResponse(
            orders=[orders_pb2.Order.FromString(o.message) for o in page], next_page_token=token
        )

    async def ConfirmOrder(self, request, context):
        return await self._move(request, domain.OrderStatus.CONFIRMED)

    async def ShipOrder(self, request, context):
        return await self._move(request, domain.OrderStatus.SHIPPED)

    async def CancelOrder(self, request, context):
        return await self._move(request, domain.OrderStatus.CANCELLED)

    async def _move(self, request, target: domain.OrderStatus) -> orders_pb2.Order:
        return order_to_proto(await self._workflow.move(_order_id(request), target, request_context.caller()))

    async def WatchOrder(self, request, context):
        order_id = _order_id(request)
        caller = request_context.caller()
        watcher = client_key(caller, context.invocation_metadata() or (), context.peer())
        # (StreamOrderEvents, the services' own stream, is not counted: no crowd of watchers can starve it)
        with self._watches.slot(watcher), self._feed.subscribe(order_id) as subscription:
            # Subscribed before reading: no change can fall between the two.
            order, seen = await self._store.get_with_sequence(order_id)
            yield order_to_proto(visible(order, caller))
            while not order.status.terminal:
                event = await subscription.next()
                if event is None:
                    raise Unavailable("the Order service is restarting; watch the order again")
                if event is LAGGED:
                    order, seen = await self._store.get_with_sequence(order_id)
                    yield order_to_proto(order)
                elif event.sequence > seen:
                    order, seen = event.order, event.sequence
                    yield self._watched.of(event)

    async def StreamOrderEvents(self, request, context):
        if request.after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        cursor = request.after_sequence
        with self._feed.subscribe() as subscription:
            while True:
                # The stored backlog, page by page, until caught up ...
                while True:
                    events = await self._store.events_after(cursor, BACKLOG_PAGE)
                    for event in events:
                        yield event_to_proto(event)
                        cursor = event.sequence
                    if len(events) < BACKLOG_PAGE:
                        break
                # ... then live events from the feed, until it says we lag behind.
                while True:
                    event = await subscription.next()
                    if event is None:
                        raise Unavailable("the Order service is restarting; resume from your last sequence")
                    if event is LAGGED or event.sequence > cursor + 1:
                        break
                    if event.sequence == cursor + 1:
                        yield self._followed.of(event)
                        cursor = event.sequence
