"""The Inventory service as Orders sees it: reserve stock through Envoy's mesh
listener. Envoy, not this code, retries and times out. (Stock comes back without a
call: Inventory follows the order events.)"""

import datetime as dt

import grpc

from meshkit.protoconv import money_from_proto
from meshkit.request_context import outgoing_metadata
from meshkit.status import from_rpc_error
from orders import domain
from orders.ports import Reserved
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc


class InventoryClient:
    """The Inventory service's ReserveStock (orders.ports.Inventory) over a mesh channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = inventory_pb2_grpc.InventoryServiceStub(channel)

    async def reserve(self, reservation_id: str, items: tuple[domain.ItemRequest, ...]) -> Reserved:
        request = inventory_pb2.ReserveStockRequest(
            reservation_id=reservation_id,
            items=[inventory_pb2.ReservationItem(product_id=i.product_id, quantity=i.quantity) for i in items],
        )
        try:
            reservation = await self._stub.ReserveStock(request, metadata=outgoing_metadata())
        except grpc.aio.AioRpcError as error:
            # the items are the customer's own (Inventory judges their product ids); the rest is ours
            raise from_rpc_error(error, "inventory", callers_fields=("items",)) from None
        return Reserved(
            [
                domain.OrderLine(item.product_id, item.quantity, money_from_proto(item.unit_price))
                for item in reservation.items
            ],
            reservation.expire_time.ToDatetime(dt.UTC),
        )
