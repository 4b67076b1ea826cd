"""Order tables and the transactions that change them.

Every change of an order writes its event in the same transaction
(transactional outbox). Event sequences come from a one-row counter that each
writer increments inside its transaction: the row lock makes sequences
gap-free and makes commit order equal sequence order, on SQLite and PostgreSQL.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from psycopg.errors import LockNotAvailable
from sqlalchemy import (
    BigInteger,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Row,
    String,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from meshkit import telemetry
from meshkit.database import Database, MoneyColumns, UTCDateTime, service_metadata, table_of, utcnow
from meshkit.errors import NotFound
from meshkit.money import Money
from orders import domain
from orders.ports import RequestConflict, ReservationExpired, StoredOrder
from orders.protos import serialized


class Base(DeclarativeBase):
    """The Order database's tables."""

    metadata = service_metadata()


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    customer_email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total_units: Mapped[int] = mapped_column(BigInteger)
    total_nanos: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The order as the API shows it (orders.protos.serialized), rewritten with every change
    # in the same transaction: GetOrder and ListOrders answer from it with one statement and
    # no conversion. A field added to the Order message needs a migration that fills it in.
    message: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        # a customer's orders, newest first (ListOrders): the first page reads one page of rows
        Index(None, "customer_email", "create_time", "order_id"),
    )


class OrderLineRow(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price_units: Mapped[int] = mapped_column(BigInteger)
    unit_price_nanos: Mapped[int] = mapped_column(Integer)


class OrderEventRow(Base):
    __tablename__ = "order_events"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(16))
    previous_status: Mapped[str | None] = mapped_column(String(16))
    # The order right after the change, as JSON, so the event needs no join
    # and stays true after later changes.
    snapshot: Mapped[str] = mapped_column(Text)
    event_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    trace_parent: Mapped[str | None] = mapped_column(String(55))


class EventCounterRow(Base):
    __tablename__ = "order_event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


def snapshot_to_json(order: domain.Order) -> str:
    """The order as an event's snapshot column keeps it (money as currency and nanos)."""
    return json.dumps(
        {
            "order_id": order.order_id,
            "customer_email": order.customer_email,
            "lines": [
                [line.product_id, line.quantity, line.unit_price.currency, line.unit_price.nanos]
                for line in order.lines
            ],
            "status": order.status.value,
            "total": [order.total.currency, order.total.nanos],
            "create_time": order.create_time.isoformat(),
            "update_time": order.update_time.isoformat(),
        }
    )


def snapshot_from_json(text: str) -> domain.Order:
    """The order an event's snapshot column keeps (snapshot_to_json's inverse)."""
    data = json.loads(text)
    return domain.Order(
        data["order_id"],
        data["customer_email"],
        tuple(domain.OrderLine(p, q, Money(c, n)) for p, q, c, n in data["lines"]),
        domain.OrderStatus(data["status"]),
        Money(*data["total"]),
        dt.datetime.fromisoformat(data["create_time"]),
        dt.datetime.fromisoformat(data["update_time"]),
    )


ORDERS = table_of(OrderRow)
LINES = table_of(OrderLineRow)
TOTAL = MoneyColumns("total")
UNIT_PRICE = MoneyColumns("unit_price")
# Built once: a statement object caches its own compiled form's key, which
# is most of what building one per call would cost.
INSERT_ORDER = insert(ORDERS)
INSERT_LINES = insert(LINES)
INSERT_EVENT = insert(table_of(OrderEventRow))
COUNTER = table_of(EventCounterRow)
NEXT_SEQUENCE = (
    update(COUNTER)
    .where(COUNTER.c.id == 1)
    .values(last_sequence=COUNTER.c.last_sequence + 1)
    .returning(COUNTER.c.last_sequence)
)
MESSAGE_OF = select(ORDERS.c.customer_email, ORDERS.c.message).where(ORDERS.c.order_id == bindparam("order_id"))
ORDER_BY_ID = select(ORDERS).where(ORDERS.c.order_id == bindparam("order_id"))
ORDER_BY_ID_LOCKED = ORDER_BY_ID.with_for_update()
LINES_OF = select(LINES).where(LINES.c.order_id == bindparam("order_id")).order_by(LINES.c.line_no)


def _event(row: Row[Any]) -> domain.OrderEvent:
    return domain.OrderEvent(
        row.sequence,
        domain.EventType(row.type),
        snapshot_from_json(row.snapshot),
        domain.OrderStatus(row.previous_status) if row.previous_status else None,
        row.event_time,
        row.trace_parent,
    )


def _one_order(connection: Connection, order_id: str, for_update: bool = False) -> domain.Order:
    """The order and its lines: two statements."""
    row = connection.execute(ORDER_BY_ID_LOCKED if for_update else ORDER_BY_ID, {"order_id": order_id}).first()
    if row is None:
        raise NotFound("order", order_id)
    lines = tuple(
        domain.OrderLine(line.product_id, line.quantity, UNIT_PRICE.money(line))
        for line in connection.execute(LINES_OF, {"order_id": order_id})
    )
    return domain.Order(
        row.order_id,
        row.customer_email,
        lines,
        domain.OrderStatus(row.status),
        TOTAL.money(row),
        row.create_time,
        row.update_time,
    )


@dataclass(frozen=True)
class ListedOrder:
    """An order of a ListOrders page: its Order message, and the key of the next page."""

    order_id: str
    create_time: dt.datetime
    message: bytes


def _milliseconds_until(deadline: dt.datetime) -> int:
    left = int((deadline - utcnow()).total_seconds() * 1000)
    if left <= 0:
        raise ReservationExpired()
    return left


class OrderStore:
    """The Order database; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._message_of = db.lookup(MESSAGE_OF)

    async def find_by_request(self, request_id: str) -> tuple[domain.Order, str | None] | None:
        def work(connection: Connection) -> tuple[domain.Order, str | None] | None:
            row = connection.execute(
                select(ORDERS.c.order_id, ORDERS.c.request_fingerprint).where(ORDERS.c.request_id == request_id)
            ).first()
            return None if row is None else (_one_order(connection, row.order_id), row.request_fingerprint)

        return await self._db.read(work)

    async def create(
        self, order: domain.Order, request_id: str, fingerprint: str, deadline: dt.datetime
    ) -> domain.Order:
        """Stores a new order and its CREATED event, committing only before deadline
        (its stock reservation's expire_time; Unavailable after it). RequestConflict if a
        concurrent request with the same request_id stored its order first."""

        def work(connection: Connection) -> domain.Order:
            if not self._db.is_sqlite:
                # no lock (the event counter's, an order row's) is waited for past the deadline
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {_milliseconds_until(deadline)}")
            connection.execute(
                INSERT_ORDER,
                {
                    "order_id": order.order_id,
                    "request_id": request_id or None,
                    "request_fingerprint": fingerprint if request_id else None,
                    "customer_email": order.customer_email,
                    "status": order.status.value,
                    **TOTAL.values(order.total),
                    "create_time": order.create_time,
                    "update_time": order.update_time,
                    "message": serialized(order),
                },
            )
            connection.execute(
                INSERT_LINES,
                [
                    {
                        "order_id": order.order_id,
                        "line_no": i,
                        "product_id": line.product_id,
                        "quantity": line.quantity,
                        **UNIT_PRICE.values(line.unit_price),
                    }
                    for i, line in enumerate(order.lines)
                ],
            )
            _append_event(connection, domain.EventType.CREATED, order, None)
            # The last moment before the commit: past the deadline Inventory may give the
            # stock back, so the order must not be stored (the commit itself takes
            # milliseconds; Inventory waits a grace of seconds more).
            _milliseconds_until(deadline)
            return order

        try:
            return await self._db.transaction(work)
        except OperationalError as error:
            if isinstance(error.orig, LockNotAvailable):
                raise ReservationExpired() from None
            raise
        except IntegrityError:
            found = await self.find_by_request(request_id) if request_id else None
            if found is None:
                raise
            raise RequestConflict(*found) from None

    async def stored(self, order_id: str) -> StoredOrder:
        """The order's owner and message, in one statement (NotFound if there is none)."""
        rows = await self._message_of.rows(order_id=order_id)
        if not rows:
            raise NotFound("order", order_id)
        return StoredOrder(*rows[0])

    async def page(self, customer_email: str, after: tuple[dt.datetime, str] | None, limit: int) -> list[ListedOrder]:
        """Newest first; after is the (create_time, order_id) of the previous page's last order."""
        query = (
            select(ORDERS.c.order_id, ORDERS.c.create_time, ORDERS.c.message)
            .order_by(ORDERS.c.create_time.desc(), ORDERS.c.order_id.desc())
            .limit(limit)
        )
        if customer_email:
            query = query.where(ORDERS.c.customer_email == customer_email)
        if after is not None:
            time, order_id = after
            query = query.where(
                or_(ORDERS.c.create_time < time, and_(ORDERS.c.create_time == time, ORDERS.c.order_id < order_id))
            )
        rows = await self._db.read(lambda connection: connection.execute(query).all())
        return [ListedOrder(row.order_id, row.create_time, row.message) for row in rows]

    async def move(self, order_id: str, target: domain.OrderStatus, now: dt.datetime) -> domain.Order:
        """Moves an order to target (FailedPrecondition if not allowed) and records the event."""

        def work(connection: Connection) -> domain.Order:
            before = _one_order(connection, order_id, for_update=True)
            after = before.moved_to(target, now)
            connection.execute(
                update(ORDERS)
                .where(ORDERS.c.order_id == order_id)
                .values(status=after.status.value, update_time=after.update_time, message=serialized(after))
            )
            _append_event(connection, domain.EventType.STATUS_CHANGED, after, before.status)
            return after

        return await self._db.transaction(work)

    async def get_with_sequence(self, order_id: str) -> tuple[domain.Order, int]:
        """The order and the sequence of its latest event, from one snapshot: read apart, a
        change committed between them would pair the old order with the new sequence, and
        a watcher would drop that change's event as already seen."""

        def work(connection: Connection) -> tuple[domain.Order, int]:
            order = _one_order(connection, order_id)
            sequence = connection.scalar(
                select(func.max(OrderEventRow.sequence)).where(OrderEventRow.order_id == order_id)
            )
            return order, sequence or 0

        return await self._db.read_snapshot(work)

    async def last_sequence(self) -> int:
        return await self._db.read(
            lambda connection: (
                connection.scalar(select(EventCounterRow.last_sequence).where(EventCounterRow.id == 1)) or 0
            )
        )

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]:
        query = (
            select(OrderEventRow).where(OrderEventRow.sequence > sequence).order_by(OrderEventRow.sequence).limit(limit)
        )
        return await self._db.read(lambda connection: [_event(row) for row in connection.execute(query)])


def _append_event(
    connection: Connection, kind: domain.EventType, order: domain.Order, previous: domain.OrderStatus | None
) -> None:
    sequence: int = connection.execute(NEXT_SEQUENCE).scalar_one()
    connection.execute(
        INSERT_EVENT,
        {
            "sequence": sequence,
            "order_id": order.order_id,
            "type": kind.value,
            "previous_status": previous.value if previous else None,
            "snapshot": snapshot_to_json(order),
            "event_time": order.update_time,
            "trace_parent": telemetry.current_traceparent(),
        },
    )
