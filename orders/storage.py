"""Order tables and the transactions that change them.

Every change of an order writes its event in the same transaction
(transactional outbox). Event sequences come from a one-row counter that each
writer increments inside its transaction: the row lock makes sequences
gap-free and makes commit order equal sequence order, on SQLite and PostgreSQL.
"""

import datetime as dt
import json

from sqlalchemy import BigInteger, ForeignKey, Integer, MetaData, String, Text, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from meshkit import telemetry
from meshkit.database import NAMING_CONVENTION, Database, UTCDateTime
from meshkit.errors import NotFound
from meshkit.money import NANOS_PER_UNIT, Money
from orders import domain


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    customer_email: Mapped[str] = mapped_column(String(254), index=True)
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total_units: Mapped[int] = mapped_column(BigInteger)
    total_nanos: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lines: Mapped[list["OrderLineRow"]] = relationship(order_by="OrderLineRow.line_no", lazy="selectin")

    def to_domain(self) -> domain.Order:
        return domain.Order(
            self.order_id,
            self.customer_email,
            tuple(line.to_domain() for line in self.lines),
            domain.OrderStatus(self.status),
            Money(self.currency, self.total_units * NANOS_PER_UNIT + self.total_nanos),
            self.create_time,
            self.update_time,
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

    def to_domain(self) -> domain.OrderLine:
        price = Money(self.currency, self.unit_price_units * NANOS_PER_UNIT + self.unit_price_nanos)
        return domain.OrderLine(self.product_id, self.quantity, price)


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

    def to_domain(self) -> domain.OrderEvent:
        return domain.OrderEvent(
            self.sequence,
            domain.EventType(self.type),
            snapshot_from_json(self.snapshot),
            domain.OrderStatus(self.previous_status) if self.previous_status else None,
            self.event_time,
            self.trace_parent,
        )


class EventCounterRow(Base):
    __tablename__ = "order_event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


def snapshot_to_json(order: domain.Order) -> str:
    return json.dumps(
        {
            "order_id": order.order_id,
            "customer_email": order.customer_email,
            "lines": [[l.product_id, l.quantity, l.unit_price.currency, l.unit_price.nanos] for l in order.lines],
            "status": order.status.value,
            "total": [order.total.currency, order.total.nanos],
            "create_time": order.create_time.isoformat(),
            "update_time": order.update_time.isoformat(),
        }
    )


def snapshot_from_json(text: str) -> domain.Order:
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


class RequestConflict(Exception):
    """Another order already carries this request_id."""

    def __init__(self, order: domain.Order, fingerprint: str | None) -> None:
        self.order = order
        self.fingerprint = fingerprint


class OrderStore:
    """The Order database; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_by_request(self, request_id: str) -> tuple[domain.Order, str | None] | None:
        def work(session: Session):
            row = session.scalars(select(OrderRow).where(OrderRow.request_id == request_id)).first()
            return None if row is None else (row.to_domain(), row.request_fingerprint)

        return await self._db.transaction(work)

    async def create(self, order: domain.Order, request_id: str, fingerprint: str) -> domain.Order:
        """Stores a new order and its CREATED event. RequestConflict if a
        concurrent request with the same request_id stored its order first."""

        def work(session: Session) -> domain.Order:
            units, nanos = order.total.units_and_nanos
            session.add(
                OrderRow(
                    order_id=order.order_id,
                    request_id=request_id or None,
                    request_fingerprint=fingerprint if request_id else None,
                    customer_email=order.customer_email,
                    status=order.status.value,
                    currency=order.total.currency,
                    total_units=units,
                    total_nanos=nanos,
                    create_time=order.create_time,
                    update_time=order.update_time,
                    lines=[
                        OrderLineRow(
                            line_no=i,
                            product_id=line.product_id,
                            quantity=line.quantity,
                            currency=line.unit_price.currency,
                            unit_price_units=line.unit_price.units_and_nanos[0],
                            unit_price_nanos=line.unit_price.units_and_nanos[1],
                        )
                        for i, line in enumerate(order.lines)
                    ],
                )
            )
            session.flush()
            _append_event(session, domain.EventType.CREATED, order, None)
            return order

        try:
            return await self._db.transaction(work)
        except IntegrityError:
            found = await self.find_by_request(request_id) if request_id else None
            if found is None:
                raise
            raise RequestConflict(*found) from None

    async def get(self, order_id: str) -> domain.Order:
        return await self._db.transaction(lambda session: _order_row(session, order_id).to_domain())

    async def page(
        self, customer_email: str, after: tuple[dt.datetime, str] | None, limit: int
    ) -> list[domain.Order]:
        """Newest first; after is the (create_time, order_id) of the previous page's last order."""

        def work(session: Session) -> list[domain.Order]:
            query = select(OrderRow).order_by(OrderRow.create_time.desc(), OrderRow.order_id.desc()).limit(limit)
            if customer_email:
                query = query.where(OrderRow.customer_email == customer_email)
            if after is not None:
                time, order_id = after
                query = query.where(
                    or_(
                        OrderRow.create_time < time,
                        and_(OrderRow.create_time == time, OrderRow.order_id < order_id),
                    )
                )
            return [row.to_domain() for row in session.scalars(query)]

        return await self._db.transaction(work)

    async def move(self, order_id: str, target: domain.OrderStatus, now: dt.datetime) -> domain.Order:
        """Moves an order to target (FailedPrecondition if not allowed) and records the event."""

        def work(session: Session) -> domain.Order:
            row = _order_row(session, order_id, for_update=True)
            before = row.to_domain()
            after = before.moved_to(target, now)
            row.status = after.status.value
            row.update_time = after.update_time
            _append_event(session, domain.EventType.STATUS_CHANGED, after, before.status)
            return after

        return await self._db.transaction(work)

    async def get_with_sequence(self, order_id: str) -> tuple[domain.Order, int]:
        """The order and the sequence of its latest event, read together."""

        def work(session: Session) -> tuple[domain.Order, int]:
            order = _order_row(session, order_id).to_domain()
            sequence = session.scalar(select(func.max(OrderEventRow.sequence)).where(OrderEventRow.order_id == order_id))
            return order, sequence or 0

        return await self._db.transaction(work)

    async def last_sequence(self) -> int:
        return await self._db.transaction(
            lambda session: session.scalar(select(EventCounterRow.last_sequence).where(EventCounterRow.id == 1)) or 0
        )

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]:
        def work(session: Session) -> list[domain.OrderEvent]:
            query = (
                select(OrderEventRow)
                .where(OrderEventRow.sequence > sequence)
                .order_by(OrderEventRow.sequence)
                .limit(limit)
            )
            return [row.to_domain() for row in session.scalars(query)]

        return await self._db.transaction(work)


def _order_row(session: Session, order_id: str, for_update: bool = False) -> OrderRow:
    row = session.get(OrderRow, order_id, with_for_update=for_update)
    if row is None:
        raise NotFound("order", order_id)
    return row


def _append_event(
    session: Session, kind: domain.EventType, order: domain.Order, previous: domain.OrderStatus | None
) -> None:
    sequence = session.execute(
        update(EventCounterRow)
        .where(EventCounterRow.id == 1)
        .values(last_sequence=EventCounterRow.last_sequence + 1)
        .returning(EventCounterRow.last_sequence)
    ).scalar_one()
    session.add(
        OrderEventRow(
            sequence=sequence,
            order_id=order.order_id,
            type=kind.value,
            previous_status=previous.value if previous else None,
            snapshot=snapshot_to_json(order),
            event_time=order.update_time,
            trace_parent=telemetry.current_traceparent(),
        )
    )
