"""InventoryService servicer: request -> domain/storage -> response, nothing more."""

import datetime as dt

import grpc

from inventory import domain
from inventory.storage import InventoryStore
from meshkit import pagination
from meshkit.protoconv import enum_to_proto, money_from_proto, money_proto_problem, money_to_proto, timestamp
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc

_STATUS_TO_PROTO = enum_to_proto(domain.ReservationStatus, inventory_pb2.Reservation.Status)


def product_to_proto(product: domain.Product) -> inventory_pb2.Product:
    return inventory_pb2.Product(
        product_id=product.product_id,
        title=product.title,
        price=money_to_proto(product.price),
        available=product.available,
        create_time=timestamp(product.create_time),
        update_time=timestamp(product.update_time),
    )


def reservation_to_proto(reservation: domain.Reservation) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        reservation_id=reservation.reservation_id,
        items=[
            inventory_pb2.ReservationItem(
                product_id=line.product_id,
                quantity=line.quantity,
                # a stored reservation's lines are priced; only a request's are not yet
                unit_price=money_to_proto(line.unit_price) if line.unit_price is not None else None,
            )
            for line in reservation.lines
        ],
        status=_STATUS_TO_PROTO[reservation.status],
        create_time=timestamp(reservation.create_time),
        update_time=timestamp(reservation.update_time),
        expire_time=timestamp(reservation.expire_time) if reservation.expire_time else None,
    )


def stock_to_proto(book: domain.StockBook) -> inventory_pb2.CheckStockResponse:
    return inventory_pb2.CheckStockResponse(
        product_id=book.product_id,
        available=book.available,
        in_stock=book.available > 0,
        reserved=book.held,
        awaiting_order=book.awaiting_order,
    )


def _new_product(message: inventory_pb2.Product) -> domain.Product:
    """The product a CreateProduct asks for, validated: one error names every violation,
    a missing or malformed price among them."""
    problem = money_proto_problem(message.price) if message.HasField("price") else "is required"
    product = domain.Product(message.product_id, message.title, money_from_proto(message.price), message.available)
    domain.validate_new_product(product, price_problem=problem)
    return product


def _reservation_lines(request: inventory_pb2.ReserveStockRequest) -> list[domain.ReservationLine]:
    lines = [domain.ReservationLine(item.product_id, item.quantity) for item in request.items]
    domain.validate_reservation(request.reservation_id, lines)
    return lines


async def _products_page(
    store: InventoryStore, request: inventory_pb2.ListProductsRequest
) -> inventory_pb2.ListProductsResponse:
    size = pagination.page_size(request.page_size)
    after = pagination.decode(request.page_token, {}, str)
    products = await store.list_products(after, size + 1)
    page, token = pagination.cut(products, size, {}, lambda last: last.product_id)
    return inventory_pb2.ListProductsResponse(products=[product_to_proto(p) for p in page], next_page_token=token)


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, store: InventoryStore, reservation_wait: dt.timedelta) -> None:
        self._store = store
        # how long a reservation waits for its order
        self._wait = reservation_wait

    async def CreateProduct(
        self,
        request: inventory_pb2.CreateProductRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.CreateProductRequest, inventory_pb2.Product],
    ) -> inventory_pb2.Product:
        return product_to_proto(await self._store.create_product(_new_product(request.product)))

    async def GetProduct(
        self,
        request: inventory_pb2.GetProductRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.GetProductRequest, inventory_pb2.Product],
    ) -> inventory_pb2.Product:
        domain.validate_product_id(request.product_id)
        return product_to_proto(await self._store.get_product(request.product_id))

    async def ListProducts(
        self,
        request: inventory_pb2.ListProductsRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.ListProductsRequest, inventory_pb2.ListProductsResponse],
    ) -> inventory_pb2.ListProductsResponse:
        return await _products_page(self._store, request)

    async def RestockProduct(
        self,
        request: inventory_pb2.RestockProductRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.RestockProductRequest, inventory_pb2.Product],
    ) -> inventory_pb2.Product:
        domain.validate_restock(request.product_id, request.quantity)
        return product_to_proto(await self._store.restock(request.product_id, request.quantity))

    async def CheckStock(
        self,
        request: inventory_pb2.CheckStockRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.CheckStockRequest, inventory_pb2.CheckStockResponse],
    ) -> inventory_pb2.CheckStockResponse:
        domain.validate_product_id(request.product_id)
        return stock_to_proto(await self._store.book(request.product_id))

    async def ReserveStock(
        self,
        request: inventory_pb2.ReserveStockRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.ReserveStockRequest, inventory_pb2.Reservation],
    ) -> inventory_pb2.Reservation:
        lines = _reservation_lines(request)
        return reservation_to_proto(await self._store.reserve(request.reservation_id, lines, self._wait))

    async def ReleaseStock(
        self,
        request: inventory_pb2.ReleaseStockRequest,
        context: grpc.aio.ServicerContext[inventory_pb2.ReleaseStockRequest, inventory_pb2.Reservation],
    ) -> inventory_pb2.Reservation:
        domain.validate_reservation_id(request.reservation_id)
        return reservation_to_proto(await self._store.release(request.reservation_id))
