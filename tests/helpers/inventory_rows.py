"""What Inventory's database holds, read directly, for tests that check its books."""

from sqlalchemy import create_engine, func, select

from devmesh.launcher import Mesh
from inventory.storage import ReservationLineRow, ReservationRow
from tests.helpers.databases import database_url


def reserved_units(mesh: Mesh, product_ids: list[str]) -> dict[str, int]:
    """Units held by reservations that still hold stock (waiting for their order, or held
    for it), per product, read from Inventory's database."""
    engine = create_engine(database_url(mesh.layout.env, "inventory"))
    query = (
        select(ReservationLineRow.product_id, func.sum(ReservationLineRow.quantity))
        .join(ReservationRow)
        .where(ReservationRow.status.in_(["RESERVED", "HELD"]), ReservationLineRow.product_id.in_(product_ids))
        .group_by(ReservationLineRow.product_id)
    )
    with engine.connect() as connection:
        found = {product_id: int(total) for product_id, total in connection.execute(query)}
    engine.dispose()
    return {product_id: found.get(product_id, 0) for product_id in product_ids}


def reservation_count(mesh: Mesh, reservation_id: str) -> int:
    """How many reservations Inventory's database holds under reservation_id."""
    engine = create_engine(database_url(mesh.layout.env, "inventory"))
    with engine.connect() as connection:
        count: int = connection.execute(
            select(func.count()).select_from(ReservationRow).where(ReservationRow.reservation_id == reservation_id)
        ).scalar_one()
    engine.dispose()
    return count
