"""Fills a ShopMesh's databases before the scale table starts its mesh: a history of
orders (each with its line and its CREATED event), the followers' stream cursors past
that history, and a backlog of unsent emails.

Millions of orders through the API would take hours, so rows are written straight into
the databases: big transactions of Core executemany on SQLite, COPY on PostgreSQL. The
schema is the services' own (their migrations), columns are named (a nullable column
added later is left NULL), and every row is made from the services' own domain types
and conversions (serialized, snapshot_to_json, render), so the services read back what
they would have written themselves; the scale table checks that they do through the API
(scale.check_read_back), so a column added later that the loader leaves NULL shows at once."""

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, Engine, FromClause, Table, create_engine, event, insert, text, update

from inventory import storage as inventory_storage
from meshkit import migrations
from meshkit.database import Database, utcnow
from meshkit.money import Money
from notifications import domain as notifications_domain
from notifications import storage as notifications_storage
from orders import domain as orders_domain
from orders import storage as orders_storage
from orders.protos import serialized

# the history's customers: each owns this many orders, spread over the whole history,
# as returning shoppers' orders are
ORDERS_PER_CUSTOMER = 5
# how many orders the benchmark's own customer owns, spread likewise: ListOrders reads
# the first page of a customer with a long history (at least two pages of 50)
LISTED_ORDERS = 100
# orders written per transaction (three rows each: order, line, event)
CHUNK = 20_000
ID_NAMESPACE = uuid.UUID("0c2c3f0e-7d4b-4a43-9a55-3b2f6c1de8a1")
SERVICES = ("orders", "inventory", "notifications")


@dataclass(frozen=True)
class History:
    """orders orders of one product, one a second up to end, ids as random as uuid4's;
    order i is event i + 1's. Every orders // LISTED_ORDERS-th is customer's, the rest
    belong to orders // ORDERS_PER_CUSTOMER others."""

    orders: int
    customer: str
    product_id: str
    price: Money
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.orders < LISTED_ORDERS:
            raise ValueError(f"a history needs at least {LISTED_ORDERS} orders, not {self.orders}")

    @property
    def listed_every(self) -> int:
        return self.orders // LISTED_ORDERS

    def customer_of(self, index: int) -> str:
        if index % self.listed_every == 0:
            return self.customer
        return f"shopper{index % max(1, self.orders // ORDERS_PER_CUSTOMER)}@history.example"

    def customers_orders(self) -> list[int]:
        """Indexes of customer's orders, oldest first."""
        return list(range(0, self.orders, self.listed_every))[:LISTED_ORDERS]

    def order(self, index: int) -> orders_domain.Order:
        created = self.end - dt.timedelta(seconds=self.orders - 1 - index)
        line = orders_domain.OrderLine(self.product_id, 1, self.price)
        return orders_domain.Order(
            str(uuid.uuid5(ID_NAMESPACE, str(index))),
            self.customer_of(index),
            (line,),
            orders_domain.OrderStatus.PENDING,
            self.price,
            created,
            created,
        )


@dataclass(frozen=True)
class Databases:
    """The URL of each service's database."""

    orders: str
    inventory: str
    notifications: str


@dataclass(frozen=True)
class Loaded:
    """What one load wrote, how, and how fast."""

    what: str
    rows: int
    seconds: float
    method: str
    # after the writes: PostgreSQL's VACUUM ANALYZE, so that the planner knows the tables
    # as a settled database's autovacuum would have told it
    settle_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def migrate(databases: Databases) -> None:
    """Each service's schema, by its own migrations, as `python -m meshkit.migrations
    <service> upgrade head` makes it."""
    for service in SERVICES:
        db = Database(getattr(databases, service))
        try:
            migrations.upgrade(db, service)
        finally:
            asyncio.run(db.close())


def load_history(databases: Databases, history: History) -> Loaded:
    """The orders, their lines and events, the event counter at the last sequence, and
    both followers' cursors there: Inventory and Notifications start caught up, as they
    would be in a shop that has run for a while, instead of replaying every event."""
    orders, lines, events = (
        _table(t.__table__)
        for t in (orders_storage.OrderRow, orders_storage.OrderLineRow, orders_storage.OrderEventRow)
    )
    started = time.perf_counter()
    with _engine(databases.orders) as engine:
        for indexes in _chunks(0, history.orders):
            chunk = [(index + 1, history.order(index)) for index in indexes]
            with engine.begin() as connection:
                _write(connection, orders, [_order_row(order) for _, order in chunk])
                _write(connection, lines, [_line_row(order) for _, order in chunk])
                _write(connection, events, [_event_row(sequence, order) for sequence, order in chunk])
        with engine.begin() as connection:
            counter = _table(orders_storage.EventCounterRow.__table__)
            connection.execute(update(counter).where(counter.c.id == 1).values(last_sequence=history.orders))
        seconds = time.perf_counter() - started
        settle = _settle(engine, [orders, lines, events])
    for url, cursors, stream in (
        (databases.inventory, inventory_storage.CURSORS, inventory_storage.ORDER_EVENTS_CURSOR_KEY),
        (databases.notifications, notifications_storage.CURSORS, notifications_storage.ORDER_EVENTS_CURSOR_KEY),
    ):
        with _engine(url) as engine, engine.begin() as connection:
            connection.execute(insert(_table(cursors)).values(stream=stream, last_sequence=history.orders))
    return Loaded(f"{history.orders:,} orders", 3 * history.orders, seconds, _method(databases.orders), settle)


def load_backlog(url: str, history: History, emails: int) -> Loaded:
    """The emails of the history's last `emails` events, recorded but unsent (PENDING and
    due now), as after an outage of the mail server: the Notification service's cursor is
    past them already (load_history), so it only has them to send."""
    if not 0 < emails <= history.orders:
        raise ValueError(f"a backlog of {emails} emails needs as many events; the history has {history.orders}")
    now = utcnow()
    table = _table(notifications_storage.NotificationRow.__table__)
    started = time.perf_counter()
    with _engine(url) as engine:
        for indexes in _chunks(history.orders - emails, history.orders):
            with engine.begin() as connection:
                _write(
                    connection, table, [_notification_row(index + 1, history.order(index), now) for index in indexes]
                )
        seconds = time.perf_counter() - started
        settle = _settle(engine, [table])
    return Loaded(f"{emails:,} unsent emails", emails, seconds, _method(url), settle)


def backlog_message_ids(history: History, emails: int) -> set[str]:
    """The Message-IDs of load_backlog's emails, by which the sink's are told apart."""
    return {
        notifications_domain.message_id(history.order(index).order_id, index + 1)
        for index in range(history.orders - emails, history.orders)
    }


def _order_row(order: orders_domain.Order) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "customer_email": order.customer_email,
        "status": order.status.value,
        **orders_storage.TOTAL.values(order.total),
        "create_time": order.create_time,
        "update_time": order.update_time,
        # the Order message GetOrder and ListOrders answer with, as the service stores it
        "message": serialized(order),
    }


def _line_row(order: orders_domain.Order) -> dict[str, object]:
    [line] = order.lines
    return {
        "order_id": order.order_id,
        "line_no": 0,
        "product_id": line.product_id,
        "quantity": line.quantity,
        **orders_storage.UNIT_PRICE.values(line.unit_price),
    }


def _event_row(sequence: int, order: orders_domain.Order) -> dict[str, object]:
    return {
        "sequence": sequence,
        "order_id": order.order_id,
        "type": orders_domain.EventType.CREATED.value,
        "snapshot": orders_storage.snapshot_to_json(order),
        "event_time": order.update_time,
    }


def _notification_row(sequence: int, order: orders_domain.Order, now: dt.datetime) -> dict[str, object]:
    # the event as the Notification service's consumer sees it (consumer.event_from_proto)
    email = notifications_domain.render(
        notifications_domain.OrderEvent(
            sequence,
            order.order_id,
            order.customer_email,
            order.status.value,
            True,
            tuple(
                notifications_domain.OrderLine(line.product_id, line.quantity, line.unit_price) for line in order.lines
            ),
            order.total,
        )
    )
    return {
        "order_id": order.order_id,
        "event_sequence": sequence,
        "recipient": email.recipient,
        "subject": email.subject,
        "body": email.body,
        "status": notifications_domain.NotificationStatus.PENDING.value,
        "attempts": 0,
        "message_id": email.message_id,
        "last_error": "",
        "create_time": now,
        "update_time": now,
        "next_attempt_time": now,
    }


@contextlib.contextmanager
def _engine(url: str) -> Iterator[Engine]:
    """An engine for loading, disposed on exit. SQLite: no fsync and a large page cache
    while loading (a crash only costs the benchmark its throwaway file)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_for_loading)
    try:
        yield engine
    finally:
        engine.dispose()


def _sqlite_for_loading(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA cache_size=-1000000")  # KiB: 1 GB
    cursor.close()


def _method(url: str) -> str:
    return "COPY" if url.startswith("postgresql") else "Core executemany"


def _write(connection: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    """rows (dicts of column name -> value, all with the same names) into table."""
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
    else:
        connection.execute(insert(table), rows)


def _copy(connection: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    """COPY FROM STDIN of rows, each value converted by its column's type first, as an
    INSERT would (UTCDateTime: aware -> naive UTC)."""
    names = list(rows[0])
    convert = [_bind(table, name, connection) for name in names]
    quote = connection.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(name) for name in names)}) FROM STDIN"
    driver = connection.connection.driver_connection
    # SQLAlchemy types a driver's connection as Any; postgresql+psycopg:// URLs take psycopg's
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"COPY needs psycopg's connection, not a {type(driver).__name__}")
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([to(row[name]) for to, name in zip(convert, names, strict=True)])


def _bind(table: Table, name: str, connection: Connection) -> Callable[[object], object]:
    processor = table.c[name].type.bind_processor(connection.dialect)
    return processor or _same


def _same(value: object) -> object:
    return value


def _settle(engine: Engine, tables: list[Table]) -> float:
    """VACUUM ANALYZE of tables on PostgreSQL (outside a transaction); nothing on SQLite,
    whose services never ANALYZE: its planner sees what it would see in a real shop."""
    if engine.dialect.name != "postgresql":
        return 0.0
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in tables:
            connection.execute(text(f"VACUUM ANALYZE {engine.dialect.identifier_preparer.quote(table.name)}"))
    return time.perf_counter() - started


def _table(clause: FromClause) -> Table:
    """A storage's table as the Table it is: SQLAlchemy types a mapped class's __table__
    as any FROM clause, though one declared with __tablename__ maps a Table."""
    if not isinstance(clause, Table):
        raise TypeError(f"{clause} is no table")
    return clause


def _chunks(start: int, stop: int) -> Iterator[range]:
    """start..stop in ranges of CHUNK: one transaction each."""
    for first in range(start, stop, CHUNK):
        yield range(first, min(first + CHUNK, stop))
