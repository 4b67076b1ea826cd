"""Inventory tables and the transactions that change them.

Stock is taken with a conditional UPDATE (available >= quantity), in product_id
order, so that it can never go negative and concurrent reservations on
PostgreSQL lock rows in one order and never deadlock.
"""

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, MetaData, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from inventory import domain
from meshkit.database import NAMING_CONVENTION, Database, UTCDateTime, utcnow
from meshkit.errors import AlreadyExists, FailedPrecondition, NotFound
from meshkit.money import NANOS_PER_UNIT, Money


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProductRow(Base):
    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    price_units: Mapped[int] = mapped_column(BigInteger)
    price_nanos: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(BigInteger)
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    @property
    def price(self) -> Money:
        return Money(self.currency, self.price_units * NANOS_PER_UNIT + self.price_nanos)

    def to_domain(self) -> domain.Product:
        return domain.Product(
            self.product_id, self.title, self.price, self.available, self.create_time, self.update_time
        )


class ReservationRow(Base):
    __tablename__ = "reservations"

    reservation_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lines: Mapped[list["ReservationLineRow"]] = relationship(
        order_by="ReservationLineRow.line_no", lazy="selectin"
    )

    def to_domain(self) -> domain.Reservation:
        return domain.Reservation(
            self.reservation_id,
            tuple(line.to_domain() for line in self.lines),
            domain.ReservationStatus(self.status),
            self.create_time,
            self.update_time,
        )


class ReservationLineRow(Base):
    __tablename__ = "reservation_lines"

    reservation_id: Mapped[str] = mapped_column(
        ForeignKey("reservations.reservation_id"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price_units: Mapped[int] = mapped_column(BigInteger)
    unit_price_nanos: Mapped[int] = mapped_column(Integer)

    def to_domain(self) -> domain.ReservationLine:
        price = Money(self.currency, self.unit_price_units * NANOS_PER_UNIT + self.unit_price_nanos)
        return domain.ReservationLine(self.product_id, self.quantity, price)


class InventoryStore:
    """The Inventory database; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_product(self, product: domain.Product) -> domain.Product:
        def work(session: Session) -> domain.Product:
            if session.get(ProductRow, product.product_id) is not None:
                raise AlreadyExists("product", product.product_id)
            now = utcnow()
            units, nanos = product.price.units_and_nanos
            row = ProductRow(
                product_id=product.product_id,
                title=product.title.strip(),
                currency=product.price.currency,
                price_units=units,
                price_nanos=nanos,
                available=product.available,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            return row.to_domain()

        try:
            return await self._db.transaction(work)
        except IntegrityError:
            # Lost a race with a concurrent create of the same id.
            raise AlreadyExists("product", product.product_id) from None

    async def get_product(self, product_id: str) -> domain.Product:
        def work(session: Session) -> domain.Product:
            return _product(session, product_id).to_domain()

        return await self._db.transaction(work)

    async def list_products(self, after: str | None, limit: int) -> list[domain.Product]:
        def work(session: Session) -> list[domain.Product]:
            query = select(ProductRow).order_by(ProductRow.product_id).limit(limit)
            if after is not None:
                query = query.where(ProductRow.product_id > after)
            return [row.to_domain() for row in session.scalars(query)]

        return await self._db.transaction(work)

    async def restock(self, product_id: str, quantity: int) -> domain.Product:
        def work(session: Session) -> domain.Product:
            row = _product(session, product_id, for_update=True)
            domain.check_restock_fits(row.to_domain(), quantity)
            row.available += quantity
            row.update_time = utcnow()
            session.flush()
            return row.to_domain()

        return await self._db.transaction(work)

    async def reserve(self, reservation_id: str, lines: list[domain.ReservationLine]) -> domain.Reservation:
        def work(session: Session) -> domain.Reservation:
            existing = session.get(ReservationRow, reservation_id)
            if existing is not None:
                reservation = existing.to_domain()
                domain.check_reservation_repeat(reservation, lines)
                return reservation
            return _take_stock(session, reservation_id, lines)

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
        def work(session: Session) -> domain.Reservation:
            row = session.get(ReservationRow, reservation_id, with_for_update=True)
            now = utcnow()
            if row is None:
                # Remember the release, so that a late ReserveStock for this id
                # (say, one Envoy still retries) takes no stock.
                row = ReservationRow(
                    reservation_id=reservation_id,
                    status=domain.ReservationStatus.RELEASED.value,
                    create_time=now,
                    update_time=now,
                    lines=[],
                )
                session.add(row)
            elif row.status == domain.ReservationStatus.RESERVED.value:
                for line in sorted(row.lines, key=lambda line: line.product_id):
                    session.execute(
                        update(ProductRow)
                        .where(ProductRow.product_id == line.product_id)
                        .values(available=ProductRow.available + line.quantity, update_time=now)
                    )
                row.status = domain.ReservationStatus.RELEASED.value
                row.update_time = now
            session.flush()
            return row.to_domain()

        return await self._db.transaction(work)


class _StockChanged(FailedPrecondition):
    """A concurrent reservation took stock between our read and our update."""

    def __init__(self) -> None:
        super().__init__("stock changed while it was being reserved; try again", reason="STOCK_CHANGED")


def _product(session: Session, product_id: str, for_update: bool = False) -> ProductRow:
    row = session.get(ProductRow, product_id, with_for_update=for_update)
    if row is None:
        raise NotFound("product", product_id)
    return row


def _take_stock(
    session: Session, reservation_id: str, lines: list[domain.ReservationLine]
) -> domain.Reservation:
    now = utcnow()
    # Claim the id first: a concurrent repeat of this reservation now waits on
    # the primary key (PostgreSQL) until this transaction ends, then fails with
    # IntegrityError and answers as a repeat, without touching any stock.
    row = ReservationRow(
        reservation_id=reservation_id, status=domain.ReservationStatus.RESERVED.value, create_time=now, update_time=now
    )
    session.add(row)
    session.flush()

    requested = {line.product_id: line.quantity for line in lines}
    products = {
        product.product_id: product
        for product in session.scalars(select(ProductRow).where(ProductRow.product_id.in_(requested)))
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
        taken = session.execute(
            update(ProductRow)
            .where(ProductRow.product_id == product_id, ProductRow.available >= requested[product_id])
            .values(available=ProductRow.available - requested[product_id], update_time=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            # A concurrent reservation took the stock after our read; raising
            # rolls back whatever this transaction already took.
            raise _StockChanged()
    row.lines = [
        ReservationLineRow(
            line_no=i,
            product_id=line.product_id,
            quantity=line.quantity,
            currency=products[line.product_id].currency,
            unit_price_units=products[line.product_id].price_units,
            unit_price_nanos=products[line.product_id].price_nanos,
        )
        for i, line in enumerate(lines)
    ]
    session.flush()
    return row.to_domain()
