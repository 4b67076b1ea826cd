"""InventoryService servicer: request -> domain/storage -> response, nothing more."""

import datetime as dt

from inventory import domain
from inventory.storage import InventoryStore
from meshkit import pagination
from meshkit.errors import FieldViolation, InvalidArgument
from meshkit.protoconv import money_from_proto, money_proto_problem, money_to_proto, timestamp
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc

_STATUS = {
    domain.ReservationStatus.RESERVED: inventory_pb2.Reservation.STATUS_RESERVED,
    domain.ReservationStatus.HELD: inventory_pb2.Reservation.STATUS_HELD,
    domain.ReservationStatus.SHIPPED: inventory_pb2.Reservation.STATUS_SHIPPED,
    domain.ReservationStatus.RELEASED: inventory_pb2.Reservation.STATUS_RELEASED,
}


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
                unit_price=money_to_proto(line.unit_price),
            )
            for line in reservation.lines
        ],
        status=_STATUS[reservation.status],
        create_time=timestamp(reservation.create_time),
        update_time=timestamp(reservation.update_time),
        expire_time=timestamp(reservation.expire_time) if reservation.expire_time else None,
    )


def _product_from_proto(message: inventory_pb2.Product) -> domain.Product:
    problem = money_proto_problem(message.price)
    if not message.HasField("price") or problem:
        raise InvalidArgument([FieldViolation("product.price", problem or "is required")])
    return domain.Product(message.product_id, message.title, money_from_proto(message.price), message.available)


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, store: InventoryStore, reservation_wait: dt.timedelta) -> None:
        self._store = store
        # how long a reservation waits for its order
        self._wait = reservation_wait

    async def CreateProduct(self, request, context):
        product = _product_from_proto(request.product)
        domain.validate_new_product(product)
        return product_to_proto(await self._store.create_product(product))

    async def GetProduct(self, request, context):
        domain.validate_product_id(request.product_id)
        return product_to_proto(await self._store.get_product(request.product_id))

    async def ListProducts(self, request, context):
        size = pagination.page_size(request.page_size)
        after = pagination.decode(request.page_token, {}, str)
        products = await self._store.list_products(after, size + 1)
        page, token = pagination.cut(products, size, {}, lambda last: last.product_id)
        return inventory_pb2.ListProductsResponse(products=[product_to_proto(p) for p in page], next_page_token=token)

    async def RestockProduct(self, request, context):
        domain.validate_restock(request.product_id, request.quantity)
        return product_to_proto(await self._store.restock(request.product_id, request.quantity))

    async def CheckStock(self, request, context):
        domain.validate_product_id(request.product_id)
        book = await self._store.book(request.product_id)
        return inventory_pb2.CheckStockResponse(
            product_id=book.product_id,
            available=book.available,
            in_stock=book.available > 0,
            reserved=book.held,
            awaiting_order=book.awaiting_order,
        )

    async def ReserveStock(self, request, context):
        lines = [domain.ReservationLine(item.product_id, item.quantity) for item in request.items]
        domain.validate_reservation(request.reservation_id, lines)
        return reservation_to_proto(await self._store.reserve(request.reservation_id, lines, self._wait))

    async def ReleaseStock(self, request, context):
        domain.validate_reservation_id(request.reservation_id)
        return reservation_to_proto(await self._store.release(request.reservation_id))
