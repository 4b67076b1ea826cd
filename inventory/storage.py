"""Inventory tables and the transactions that change them.

Stock is taken with a conditional UPDATE (available >= quantity), in product_id
order, so that it can never go negative and concurrent reservations on
PostgreSQL lock rows in one order and never deadlock.

A reservation then follows its order (domain.status_for_order): the order event
stream holds it, ships it or gives its stock back, each event applied in the same
transaction that moves the stored cursor, so an event applied twice changes nothing.

The declarative classes define the tables (and what Alembic compares); every
statement is SQLAlchemy Core, mapped to the domain by hand: an ORM unit of work
cost several times the statements themselves on these short transactions.
"""

import datetime as dt
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from inventory import domain
from meshkit.cursors import StreamCursor, StreamCursorColumns
from meshkit.database import Database, MoneyColumns, UTCDateTime, service_metadata, table_of, utcnow
from meshkit.errors import AlreadyExists, FailedPrecondition, NotFound


class Base(DeclarativeBase):
    """The Inventory database's tables."""

    metadata = service_metadata()


class ProductRow(Base):
    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    price_units: Mapped[int] = mapped_column(BigInteger)
    price_nanos: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(BigInteger)
    # The books, kept with every change of stock: initial stock plus every restock, and
    # the units of this product's reservations waiting for their order, held for live
    # orders, and shipped. available + awaiting + held = received - shipped.
    received: Mapped[int] = mapped_column(BigInteger, server_default="0")
    awaiting: Mapped[int] = mapped_column(BigInteger, server_default="0")
    held: Mapped[int] = mapped_column(BigInteger, server_default="0")
    shipped: Mapped[int] = mapped_column(BigInteger, server_default="0")
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReservationRow(Base):
    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_status_expire_time", "status", "expire_time"),)

    reservation_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ReservationLineRow(Base):
    __tablename__ = "reservation_lines"

    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.reservation_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), index=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price_units: Mapped[int] = mapped_column(BigInteger)
    unit_price_nanos: Mapped[int] = mapped_column(Integer)


class StreamCursorRow(StreamCursorColumns, Base):
    """How far Inventory has applied the order event stream."""


PRODUCTS = table_of(ProductRow)
RESERVATIONS = table_of(ReservationRow)
LINES = table_of(ReservationLineRow)
CURSORS = table_of(StreamCursorRow)
PRICE = MoneyColumns("price")
UNIT_PRICE = MoneyColumns("unit_price")
# stream_cursors' key (its stream column) of the order event stream's row
ORDER_EVENTS_CURSOR_KEY = "order_events"
ORDER_EVENTS_CURSOR = StreamCursor(CURSORS, ORDER_EVENTS_CURSOR_KEY)
PRODUCT_BY_ID = select(PRODUCTS).where(PRODUCTS.c.product_id == bindparam("product_id"))
RESERVATION_BY_ID = select(RESERVATIONS).where(RESERVATIONS.c.reservation_id == bindparam("reservation_id"))
# Built once: a statement object caches its own compiled form's key, which
# is most of what building one per call would cost.
INSERT_RESERVATION = insert(RESERVATIONS)
INSERT_LINES = insert(LINES)
TAKE_STOCK = (
    update(PRODUCTS)
    .where(PRODUCTS.c.product_id == bindparam("p_product_id"), PRODUCTS.c.available >= bindparam("p_quantity"))
    .values(
        available=PRODUCTS.c.available - bindparam("p_quantity"),
        awaiting=PRODUCTS.c.awaiting + bindparam("p_quantity"),
        update_time=bindparam("p_now"),
    )
)
# The column of the books that counts a reservation's units in each status.
_BOOK_COLUMN = {
    domain.ReservationStatus.RESERVED: "awaiting",
    domain.ReservationStatus.HELD: "held",
    domain.ReservationStatus.SHIPPED: "shipped",
    domain.ReservationStatus.RELEASED: "available",
}
LINES_OF = select(LINES).where(LINES.c.reservation_id == bindparam("reservation_id")).order_by(LINES.c.line_no)
PRODUCTS_IN = select(PRODUCTS).where(PRODUCTS.c.product_id.in_(bindparam("product_ids", expanding=True)))
# A reservation's units moved in the books from one column to another, per product line.
MOVE_UNITS = {
    (source, destination): update(PRODUCTS)
    .where(PRODUCTS.c.product_id == bindparam("p_product_id"))
    .values(
        {
            source: PRODUCTS.c[source] - bindparam("p_quantity"),
            destination: PRODUCTS.c[destination] + bindparam("p_quantity"),
            "update_time": bindparam("p_now"),
        }
    )
    for source in _BOOK_COLUMN.values()
    for destination in _BOOK_COLUMN.values()
    if source != destination
}
LOCK_RESERVATIONS = (
    select(RESERVATIONS.c.reservation_id)
    .where(RESERVATIONS.c.reservation_id.in_(bindparam("reservation_ids", expanding=True)))
    .order_by(RESERVATIONS.c.reservation_id)
    .with_for_update()
)
LOCK_PRODUCTS_OF = (
    select(PRODUCTS.c.product_id)
    .where(
        PRODUCTS.c.product_id.in_(
            select(LINES.c.product_id).where(LINES.c.reservation_id.in_(bindparam("reservation_ids", expanding=True)))
        )
    )
    .order_by(PRODUCTS.c.product_id)
    .with_for_update()
)
SET_STATUS = (
    update(RESERVATIONS)
    .where(RESERVATIONS.c.reservation_id == bindparam("p_reservation_id"))
    .values(status=bindparam("p_status"), update_time=bindparam("p_now"))
)


def _product_from(row: Row[Any]) -> domain.Product:
    return domain.Product(row.product_id, row.title, PRICE.money(row), row.available, row.create_time, row.update_time)


def _line_from(row: Row[Any]) -> domain.ReservationLine:
    return domain.ReservationLine(row.product_id, row.quantity, UNIT_PRICE.money(row))


class InventoryStore:
    """The Inventory database; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_product(self, product: domain.Product) -> domain.Product:
        def work(connection: Connection) -> domain.Product:
            if connection.execute(PRODUCT_BY_ID, {"product_id": product.product_id}).first() is not None:
                raise AlreadyExists("product", product.product_id)
            now = utcnow()
            connection.execute(
                insert(PRODUCTS).values(
                    product_id=product.product_id,
                    title=product.title.strip(),
                    **PRICE.values(product.price),
                    available=product.available,
                    received=product.available,
                    create_time=now,
                    update_time=now,
                )
            )
            return _product(connection, product.product_id)

        try:
            return await self._db.transaction(work)
        except IntegrityError:
            # Lost a race with a concurrent create of the same id.
            raise AlreadyExists("product", product.product_id) from None

    async def get_product(self, product_id: str) -> domain.Product:
        return await self._db.read(lambda connection: _product(connection, product_id))

    async def list_products(self, after: str | None, limit: int) -> list[domain.Product]:
        query = select(PRODUCTS).order_by(PRODUCTS.c.product_id).limit(limit)
        if after is not None:
            query = query.where(PRODUCTS.c.product_id > after)
        return await self._db.read(lambda connection: [_product_from(row) for row in connection.execute(query)])

    async def restock(self, product_id: str, quantity: int) -> domain.Product:
        def work(connection: Connection) -> domain.Product:
            product = _product(connection, product_id, for_update=True)
            domain.check_restock_fits(product, quantity)
            connection.execute(
                update(PRODUCTS)
                .where(PRODUCTS.c.product_id == product_id)
                .values(
                    available=PRODUCTS.c.available + quantity,
                    received=PRODUCTS.c.received + quantity,
                    update_time=utcnow(),
                )
            )
            return _product(connection, product_id)

        return await self._db.transaction(work)

    async def reserve(
        self, reservation_id: str, lines: list[domain.ReservationLine], wait: dt.timedelta
    ) -> domain.Reservation:
        """Takes the stock of lines for reservation_id, to wait for its order for wait."""

        def work(connection: Connection) -> domain.Reservation:
            existing = _reservation(connection, reservation_id, for_update=True)
            if existing is None:
                return _take_stock(connection, reservation_id, lines, wait)
            domain.check_reservation_repeat(existing, lines)
            if existing.status is domain.ReservationStatus.RESERVED:
                # The order is being placed again (a repeat of its request): it gets the
                # whole wait again. Settling re-checks expire_time under the same row lock.
                expire_time = utcnow() + wait
                connection.execute(
                    update(RESERVATIONS)
                    .where(RESERVATIONS.c.reservation_id == reservation_id)
                    .values(expire_time=expire_time)
                )
                return replace(existing, expire_time=expire_time)
            return existing

        try:
            return await self._db.transaction(work)
        except IntegrityError:
            # A concurrent repeat of the same reservation committed first:
            # answer as the repeat would.
            return await self._db.transaction(work)
        except _StockChanged:
            # Once more, on what is committed now: either enough is left, or the
            # answer names every product that is short.
            return await self._db.transaction(work)

    async def release(self, reservation_id: str) -> domain.Reservation:
        def work(connection: Connection) -> domain.Reservation:
            existing = _reservation(connection, reservation_id, for_update=True)
            now = utcnow()
            if existing is None:
                # Remember the release, so that a late ReserveStock for this id
                # (say, one Envoy still retries) takes no stock.
                connection.execute(
                    insert(RESERVATIONS).values(
                        reservation_id=reservation_id,
                        status=domain.ReservationStatus.RELEASED.value,
                        create_time=now,
                        update_time=now,
                    )
                )
            else:
                _move(connection, existing, domain.ReservationStatus.RELEASED, now)
            return _stored_reservation(connection, reservation_id)

        try:
            return await self._db.transaction(work)
        except IntegrityError:
            # A ReserveStock of the same id committed while this waited on the key
            # (PostgreSQL): release what it reserved.
            return await self._db.transaction(work)

    async def cursor(self) -> int:
        """The sequence of the last order event applied."""
        return await self._db.read(ORDER_EVENTS_CURSOR.read)

    async def apply_order_events(self, events: list[tuple[int, str, str]]) -> list[domain.Reservation]:
        """Moves each order's reservation as its new status says ((sequence, order_id,
        order_status), in sequence order), and the cursor past the last, in one transaction.
        Returns the reservations an event found given back although their order lives on
        (see expire())."""

        def work(connection: Connection) -> list[domain.Reservation]:
            last = ORDER_EVENTS_CURSOR.claim(connection)
            new = [event for event in events if event[0] > last]  # the rest were applied before
            if not new:
                return []
            ORDER_EVENTS_CURSOR.move(connection, new[-1][0])
            if len(new) > 1:
                # Locked up front in the order every other transaction takes them (its one
                # reservation, then products by id), not event by event: a batch moving one
                # order's units and then another's would lock products out of order and could
                # deadlock with a ReserveStock (PostgreSQL).
                reservation_ids = sorted({order_id for _, order_id, _ in new})
                connection.execute(LOCK_RESERVATIONS, {"reservation_ids": reservation_ids})
                connection.execute(LOCK_PRODUCTS_OF, {"reservation_ids": reservation_ids})
            found = (_follow_order(connection, order_id, status) for _, order_id, status in new)
            return [reservation for reservation in found if reservation is not None]

        return await self._db.transaction(work)

    async def expired(self, now: dt.datetime, limit: int) -> list[str]:
        """Ids of reservations still waiting for their order past their expire_time."""
        query = (
            select(RESERVATIONS.c.reservation_id)
            .where(RESERVATIONS.c.status == domain.ReservationStatus.RESERVED.value, RESERVATIONS.c.expire_time < now)
            .order_by(RESERVATIONS.c.expire_time)
            .limit(limit)
        )
        return await self._db.read(lambda connection: list(connection.scalars(query)))

    async def settle(self, reservation_id: str, order_status: str | None, grace: dt.timedelta) -> None:
        """Settles an expired reservation by what became of its order: none (it can no
        longer be stored, so the stock goes back), or its status. A reservation renewed
        meanwhile (a repeated ReserveStock) is left alone."""

        def work(connection: Connection) -> None:
            if order_status is None:
                existing = _reservation(connection, reservation_id, for_update=True)
                now = utcnow()
                if (
                    existing is not None
                    and existing.status is domain.ReservationStatus.RESERVED
                    and existing.expire_time is not None  # a RESERVED one always has one
                    and existing.expire_time + grace < now
                ):
                    _move(connection, existing, domain.ReservationStatus.RELEASED, now)
            else:
                _follow_order(connection, reservation_id, order_status)

        await self._db.transaction(work)

    async def books(self) -> list[domain.StockBook]:
        """Every product's books."""
        query = select(PRODUCTS).order_by(PRODUCTS.c.product_id)
        return await self._db.read(lambda connection: [_book_from(row) for row in connection.execute(query)])

    async def book(self, product_id: str) -> domain.StockBook:
        return await self._db.read(lambda connection: _book_from(_product_row(connection, product_id)))

    async def reservations(self) -> list[domain.Reservation]:
        """Every reservation, for the books check (python -m inventory.reconcile)."""

        def work(connection: Connection) -> list[domain.Reservation]:
            lines: dict[str, list[domain.ReservationLine]] = {}
            for row in connection.execute(select(LINES).order_by(LINES.c.reservation_id, LINES.c.line_no)):
                lines.setdefault(row.reservation_id, []).append(_line_from(row))
            return [
                _reservation_from(row, tuple(lines.get(row.reservation_id, ())))
                for row in connection.execute(select(RESERVATIONS).order_by(RESERVATIONS.c.reservation_id))
            ]

        return await self._db.read(work)


def _follow_order(connection: Connection, order_id: str, order_status: str) -> domain.Reservation | None:
    """Moves order_id's reservation as its order's status says; returns it when it had
    been given back although the order still needs its stock."""
    existing = _reservation(connection, order_id, for_update=True)
    if existing is None:
        return None
    target = domain.status_for_order(existing.status, order_status)
    if target is not None:
        _move(connection, existing, target, utcnow())
    elif existing.status is domain.ReservationStatus.RELEASED and order_status != "CANCELLED":
        return existing
    return None


def _move(
    connection: Connection, reservation: domain.Reservation, target: domain.ReservationStatus, now: dt.datetime
) -> None:
    """Sets a reservation's status and moves its units in the books from the old status's
    column to the new one's (giving it back puts its stock on the shelf), once."""
    if reservation.status is target:
        return
    if reservation.status is not domain.ReservationStatus.RELEASED:  # a released one's units are on the shelf already
        move_units = MOVE_UNITS[_BOOK_COLUMN[reservation.status], _BOOK_COLUMN[target]]
        for line in sorted(reservation.lines, key=lambda line: line.product_id):
            connection.execute(move_units, {"p_product_id": line.product_id, "p_quantity": line.quantity, "p_now": now})
    connection.execute(
        SET_STATUS, {"p_reservation_id": reservation.reservation_id, "p_status": target.value, "p_now": now}
    )


class _StockChanged(FailedPrecondition):
    """A concurrent reservation took stock between our read and our update."""

    def __init__(self) -> None:
        super().__init__("stock changed while it was being reserved; try again", reason="STOCK_CHANGED")


def _product_row(connection: Connection, product_id: str, for_update: bool = False) -> Row[Any]:
    query = PRODUCT_BY_ID.with_for_update() if for_update else PRODUCT_BY_ID
    row = connection.execute(query, {"product_id": product_id}).first()
    if row is None:
        raise NotFound("product", product_id)
    return row


def _product(connection: Connection, product_id: str, for_update: bool = False) -> domain.Product:
    return _product_from(_product_row(connection, product_id, for_update))


def _book_from(row: Row[Any]) -> domain.StockBook:
    return domain.StockBook(row.product_id, row.available, row.held, row.awaiting, row.shipped, row.received)


def _reservation(connection: Connection, reservation_id: str, for_update: bool = False) -> domain.Reservation | None:
    query = RESERVATION_BY_ID.with_for_update() if for_update else RESERVATION_BY_ID
    row = connection.execute(query, {"reservation_id": reservation_id}).first()
    if row is None:
        return None
    lines = tuple(_line_from(line) for line in connection.execute(LINES_OF, {"reservation_id": reservation_id}))
    return _reservation_from(row, lines)


def _stored_reservation(connection: Connection, reservation_id: str) -> domain.Reservation:
    """The reservation, which this transaction has written (NotFound if it has not)."""
    reservation = _reservation(connection, reservation_id)
    if reservation is None:
        raise NotFound("reservation", reservation_id)
    return reservation


def _reservation_from(row: Row[Any], lines: tuple[domain.ReservationLine, ...]) -> domain.Reservation:
    return domain.Reservation(
        row.reservation_id,
        lines,
        domain.ReservationStatus(row.status),
        row.create_time,
        row.update_time,
        row.expire_time,
    )


def _take_stock(
    connection: Connection, reservation_id: str, lines: list[domain.ReservationLine], wait: dt.timedelta
) -> domain.Reservation:
    now = utcnow()
    expire_time = now + wait
    # Claim the id first: a concurrent repeat of this reservation now waits on
    # the primary key (PostgreSQL) until this transaction ends, then fails with
    # IntegrityError and answers as a repeat, without touching any stock.
    status = domain.ReservationStatus.RESERVED
    connection.execute(
        INSERT_RESERVATION,
        {
            "reservation_id": reservation_id,
            "status": status.value,
            "create_time": now,
            "update_time": now,
            "expire_time": expire_time,
        },
    )

    requested = {line.product_id: line.quantity for line in lines}
    products = {
        row.product_id: _product_from(row) for row in connection.execute(PRODUCTS_IN, {"product_ids": list(requested)})
    }
    unknown = sorted(set(requested) - set(products))
    if unknown:
        raise NotFound("product", unknown)
    domain.raise_if_short(requested, {pid: product.available for pid, product in products.items()})

    # The conditional UPDATE is the guard against oversell: it decrements only
    # while enough is left, and PostgreSQL re-checks the condition after waiting
    # for a concurrent writer's row lock (READ COMMITTED). Products are updated
    # in product_id order, so two reservations lock rows in the same order and
    # cannot deadlock. SQLite runs writers one at a time (BEGIN IMMEDIATE).
    for product_id in sorted(requested):
        taken = connection.execute(
            TAKE_STOCK, {"p_product_id": product_id, "p_quantity": requested[product_id], "p_now": now}
        ).rowcount
        if taken != 1:
            # A concurrent reservation took the stock after our read; raising
            # rolls back whatever this transaction already took.
            raise _StockChanged()
    reserved = tuple(
        domain.ReservationLine(line.product_id, line.quantity, products[line.product_id].price) for line in lines
    )
    connection.execute(
        INSERT_LINES,
        [
            {
                "reservation_id": reservation_id,
                "line_no": i,
                "product_id": line.product_id,
                "quantity": line.quantity,
                **UNIT_PRICE.values(products[line.product_id].price),
            }
            for i, line in enumerate(lines)
        ],
    )
    return domain.Reservation(reservation_id, reserved, status, now, now, expire_time)
