"""OrderService servicer: request -> workflow -> response, nothing more."""

import datetime as dt

import grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

from meshkit import pagination
from meshkit.errors import Validator
from meshkit.protoconv import money_to_proto, timestamp
from orders import domain
from orders.storage import OrderStore
from orders.workflow import OrderWorkflow

STATUS_TO_PROTO = {
    domain.OrderStatus.PENDING: orders_pb2.ORDER_STATUS_PENDING,
    domain.OrderStatus.CONFIRMED: orders_pb2.ORDER_STATUS_CONFIRMED,
    domain.OrderStatus.SHIPPED: orders_pb2.ORDER_STATUS_SHIPPED,
    domain.OrderStatus.CANCELLED: orders_pb2.ORDER_STATUS_CANCELLED,
}
MAX_ORDER_ID_LENGTH = 64


def order_to_proto(order: domain.Order) -> orders_pb2.Order:
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
    def __init__(self, workflow: OrderWorkflow, store: OrderStore) -> None:
        self._workflow = workflow
        self._store = store

    async def CreateOrder(self, request, context):
        new = domain.validate_new_order(
            request.customer_email,
            [domain.ItemRequest(item.product_id, item.quantity) for item in request.items],
            request.request_id,
        )
        return order_to_proto(await self._workflow.create(new))

    async def GetOrder(self, request, context):
        return order_to_proto(await self._workflow.get(_order_id(request)))

    async def ListOrders(self, request, context):
        filters = {"customer_email": request.customer_email}
        size = pagination.page_size(request.page_size)
        after = pagination.decode(request.page_token, filters, _list_key)
        orders = await self._store.page(request.customer_email, after, size + 1)
        page = orders[:size]
        token = ""
        if len(orders) > size:
            last = page[-1]
            token = pagination.encode([last.create_time.isoformat(), last.order_id], filters)
        return orders_pb2.ListOrdersResponse(orders=[order_to_proto(o) for o in page], next_page_token=token)

    async def ConfirmOrder(self, request, context):
        return order_to_proto(await self._workflow.move(_order_id(request), domain.OrderStatus.CONFIRMED))

    async def ShipOrder(self, request, context):
        return order_to_proto(await self._workflow.move(_order_id(request), domain.OrderStatus.SHIPPED))

    async def CancelOrder(self, request, context):
        return order_to_proto(await self._workflow.move(_order_id(request), domain.OrderStatus.CANCELLED))

    async def WatchOrder(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "WatchOrder is not available in this release yet")
        yield  # makes this an async generator, as a server-streaming handler is

    async def StreamOrderEvents(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "StreamOrderEvents is not available in this release yet")
        yield  # makes this an async generator, as a server-streaming handler is
