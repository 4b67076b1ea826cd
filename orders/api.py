"""OrderService servicer: request -> workflow -> response, nothing more."""

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Protocol

import grpc

from meshkit import pagination, request_context
from meshkit.caller import Caller
from meshkit.errors import FieldViolation, InvalidArgument, Validator
from orders import domain
from orders.feed import ChangeFeed
from orders.protos import order_to_proto
from orders.storage import OrderStore
from orders.streams import OrderStreams
from orders.watches import OpenWatches, client_key
from orders.workflow import OrderWorkflow
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

MAX_ORDER_ID_LENGTH = 64


class _NamesAnOrder(Protocol):
    @property
    def order_id(self) -> str: ...


def _order_id(request: _NamesAnOrder) -> str:
    v = Validator()
    v.check(bool(request.order_id), "order_id", "must not be empty")
    v.check(len(request.order_id) <= MAX_ORDER_ID_LENGTH, "order_id", "is too long to be an order id")
    v.raise_if_any()
    return request.order_id


def _new_order(request: orders_pb2.CreateOrderRequest) -> domain.NewOrder:
    return domain.validate_new_order(
        # a customer orders for themselves: an empty customer_email means the token's
        request_context.caller().acting_for(request.customer_email),
        [domain.ItemRequest(item.product_id, item.quantity) for item in request.items],
        request.request_id,
    )


def _after_sequence(request: orders_pb2.StreamOrderEventsRequest) -> int:
    if request.after_sequence < 0:
        raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
    return request.after_sequence


def _list_key(key: Any) -> tuple[dt.datetime, str]:
    """The (create_time, order_id) a ListOrders page token carries."""
    time, order_id = key
    parsed = dt.datetime.fromisoformat(time)
    if parsed.tzinfo is None:
        raise ValueError("naive time in page token")
    return parsed, str(order_id)


async def _list_orders(
    store: OrderStore, request: orders_pb2.ListOrdersRequest, caller: Caller
) -> orders_pb2.ListOrdersResponse:
    # a customer lists their own orders; an operator anyone's, or all
    customer_email = caller.acting_for(request.customer_email)
    filters = {"customer_email": customer_email}
    size = pagination.page_size(request.page_size)
    after = pagination.decode(request.page_token, filters, _list_key)
    orders = await store.page(customer_email, after, size + 1)
    page, token = pagination.cut(orders, size, filters, lambda last: [last.create_time.isoformat(), last.order_id])
    return orders_pb2.ListOrdersResponse(
        orders=[orders_pb2.Order.FromString(o.message) for o in page], next_page_token=token
    )


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, workflow: OrderWorkflow, store: OrderStore, feed: ChangeFeed, watches: OpenWatches) -> None:
        self._workflow = workflow
        self._store = store
        self._streams = OrderStreams(store, feed, watches)

    async def CreateOrder(
        self,
        request: orders_pb2.CreateOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.CreateOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        return order_to_proto(await self._workflow.create(_new_order(request)))

    async def GetOrder(
        self,
        request: orders_pb2.GetOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.GetOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        return orders_pb2.Order.FromString(await self._workflow.get(_order_id(request), request_context.caller()))

    async def ListOrders(
        self,
        request: orders_pb2.ListOrdersRequest,
        context: grpc.aio.ServicerContext[orders_pb2.ListOrdersRequest, orders_pb2.ListOrdersResponse],
    ) -> orders_pb2.ListOrdersResponse:
        return await _list_orders(self._store, request, request_context.caller())

    async def ConfirmOrder(
        self,
        request: orders_pb2.ConfirmOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.ConfirmOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        return await self._move(request, domain.OrderStatus.CONFIRMED)

    async def ShipOrder(
        self,
        request: orders_pb2.ShipOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.ShipOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        return await self._move(request, domain.OrderStatus.SHIPPED)

    async def CancelOrder(
        self,
        request: orders_pb2.CancelOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.CancelOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        return await self._move(request, domain.OrderStatus.CANCELLED)

    async def _move(self, request: _NamesAnOrder, target: domain.OrderStatus) -> orders_pb2.Order:
        return order_to_proto(await self._workflow.move(_order_id(request), target, request_context.caller()))

    async def WatchOrder(
        self,
        request: orders_pb2.WatchOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.WatchOrderRequest, orders_pb2.Order],
    ) -> AsyncIterator[orders_pb2.Order]:
        order_id, caller = _order_id(request), request_context.caller()
        watcher = client_key(caller, context.invocation_metadata() or (), context.peer())
        # closed with the call, so that its watch slot and subscription end with it
        async with aclosing(self._streams.order_changes(order_id, caller, watcher)) as changes:
            async for order in changes:
                yield order

    async def StreamOrderEvents(
        self,
        request: orders_pb2.StreamOrderEventsRequest,
        context: grpc.aio.ServicerContext[orders_pb2.StreamOrderEventsRequest, orders_pb2.OrderEvent],
    ) -> AsyncIterator[orders_pb2.OrderEvent]:
        async with aclosing(self._streams.order_events(_after_sequence(request))) as events:
            async for event in events:
                yield event
