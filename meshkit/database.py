"""SQLAlchemy plumbing shared by every service: engine, transactions, UTC times.

Services use SQLAlchemy Core's synchronous API and run each whole transaction
in a small thread pool, so that a transaction costs one thread hop rather than
one per statement. SQLite gets a single connection and a single thread: one writer,
no lock contention inside a process, committing the transactions that queue up in
groups (meshkit.group_commit); BEGIN IMMEDIATE and a busy timeout keep writers of
several processes from deadlocking on the same file.

Reads (Database.read) run in a transaction that is rolled back, never committed.
On SQLite they run on the calling thread over a read-only connection of their own:
in WAL mode a reader takes no lock and never waits for the writer, and the hop to
a thread would cost more (~90 µs measured) than a point read itself. Such a read
sees one snapshot throughout; on PostgreSQL, whose READ COMMITTED takes a snapshot per
statement, Database.read_snapshot asks for that when several statements must agree.
"""

import asyncio
import contextvars
import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import DateTime, MetaData, Row, Select, Table, create_engine, event, exc
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from meshkit import telemetry
from meshkit.group_commit import GroupCommitter
from meshkit.money import Money

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

POSTGRES_POOL_SIZE = 8
# Deterministic constraint and index names, so that the Alembic migrations can
# name exactly what the models declare, on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A new MetaData for one service's declarative base (`metadata = service_metadata()`),
    naming constraints and indexes by NAMING_CONVENTION. Each service has a database and
    an Alembic history of its own, and two of them have a table of the same name
    (stream_cursors), so no two services may share one."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def table_of(mapped: type[DeclarativeBase]) -> Table:
    """The Table a declarative class is mapped to, for Core statements on it. (SQLAlchemy
    types __table__ as any FromClause, since a class may map a join or a subquery; each of
    the services' classes maps one table.)"""
    table = mapped.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{mapped.__name__} is mapped to a {type(table).__name__}, not a Table")
    return table


class MoneyColumns:
    """Where a table keeps an amount of money: google.type.Money's split over a `currency`
    column and two of one prefix, so that MoneyColumns("price") is currency, price_units
    and price_nanos. Converts a Money to those columns' values and a row's back."""

    __slots__ = ("_nanos", "_units")

    def __init__(self, prefix: str) -> None:
        self._units = f"{prefix}_units"
        self._nanos = f"{prefix}_nanos"

    def values(self, money: Money) -> dict[str, str | int]:
        """money as the columns' values, for an INSERT or UPDATE."""
        units, nanos = money.units_and_nanos
        return {"currency": money.currency, self._units: units, self._nanos: nanos}

    def money(self, row: Row[Any]) -> Money:
        """The amount a row of the table keeps."""
        return Money.of(row.currency, getattr(row, self._units), getattr(row, self._nanos))


def is_outage(error: BaseException) -> bool:
    """Whether error is of a database away for a while: a server restarting or out of
    reach, a connection lost, SQLite's write lock held past the busy timeout (by a backup,
    say). Work that met one can go on once the database is back; a broken constraint or a
    statement the schema refuses would fail the same way every time."""
    if isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)):
        return True
    return isinstance(error, exc.DBAPIError) and error.connection_invalidated


def utcnow() -> dt.datetime:
    """Now, in UTC (what every UTCDateTime column takes)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC (portable across SQLite and PostgreSQL), returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def _sqlite_engine(url: URL, reader: bool = False, connections: int = 1) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=connections,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if reader:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # a writer takes the write lock up front; a reader's snapshot starts at its first read
        connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

    return engine


class Database:
    """One service's database: an engine and the threads that run its transactions."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._reader: Engine | None = None
        self._snapshots: Engine | None = None
        # SQLite: the reader's second connection, held for Lookup's reads, and its driver's
        self._lookups: PoolProxiedConnection | None = None
        self._lookups_driver: sqlite3.Connection | None = None
        self._writer: GroupCommitter | None = None
        if self.is_sqlite:
            self.engine = _sqlite_engine(parsed)
            self._reader = _sqlite_engine(parsed, reader=True, connections=2)
            self._writer = GroupCommitter(self.engine)
        else:
            self.engine = create_engine(parsed, pool_size=POSTGRES_POOL_SIZE, max_overflow=0, pool_pre_ping=True)
            # The same pool: a connection checked out through this begins its transaction so.
            self._snapshots = self.engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        telemetry.instrument_engines(*[engine for engine in (self.engine, self._reader) if engine is not None])
        # PostgreSQL's transactions and reads, a thread per pooled connection (SQLite's run
        # inline or in its writer's thread)
        self._executor = ThreadPoolExecutor(POSTGRES_POOL_SIZE, thread_name_prefix="db")

    def _run(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Runs work(connection) in one transaction: committed if it returns,
        rolled back if it raises. On SQLite, in a group commit (meshkit.group_commit)."""
        if self._writer is not None:
            return await self._writer.transaction(work)
        return await self._in_thread(self._run, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Runs work(connection) in one transaction that is rolled back afterwards."""
        if self._reader is not None:
            return _read(self._reader, work)
        return await self._in_thread(_read, self.engine, work)

    async def read_snapshot(self, work: Callable[[Connection], T]) -> T:
        """Like read, but every statement of work sees the database as of one moment, so
        that what they read together agrees even while other transactions commit."""
        if self._snapshots is None:  # SQLite: a read sees one snapshot throughout anyway
            return await self.read(work)
        return await self._in_thread(_read, self._snapshots, work)

    def lookup(self, query: Select[Any]) -> "Lookup":
        """query (selecting columns that need no conversion by SQLAlchemy's types, with
        its parameters as bindparam()s) prepared as a Lookup on this database."""
        compiled = query.compile(dialect=self.engine.dialect)
        names = compiled.positiontup if compiled.positional else None
        return Lookup(self, str(compiled), tuple(names) if names is not None else None)

    def _lookup_rows(
        self, sql: str, parameters: tuple[object, ...] | Mapping[str, object]
    ) -> Sequence[tuple[Any, ...]]:
        if self._reader is not None:
            # SQLite in autocommit: the statement is its own read transaction; fetchall()
            # ends it, so no snapshot stays open to hold back the writer's checkpoints
            return self._sqlite_lookups(self._reader).execute(sql, parameters).fetchall()
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, parameters)
            return cursor.fetchall()
        finally:
            connection.close()  # back to the pool, which rolls its transaction back

    def _sqlite_lookups(self, reader: Engine) -> sqlite3.Connection:
        """The driver's connection Lookup's reads run on, taken from reader's pool at the first."""
        if self._lookups_driver is None:
            self._lookups = reader.raw_connection()
            driver = self._lookups.driver_connection
            # SQLAlchemy types a driver's connection as Any; sqlite:// URLs take the standard library's
            if not isinstance(driver, sqlite3.Connection):
                raise TypeError(f"SQLite's driver connection is a {type(driver).__name__}, not a sqlite3.Connection")
            self._lookups_driver = driver
        return self._lookups_driver

    async def _in_thread(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        loop = asyncio.get_running_loop()
        # The caller's context goes along: its trace (database spans become
        # children of the call's span) and its request id (for logs).
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, context.run, function, *args)

    async def close(self) -> None:
        """Lets the transactions under way finish, then closes every connection."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown)
        if self._writer is not None:
            await loop.run_in_executor(None, self._writer.close)
        if self._lookups is not None:
            self._lookups.close()
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


class Lookup:
    """A one-statement read run on the database driver's own connection, past SQLAlchemy's
    per-statement work: about 55 µs a statement on SQLite, measured, against 3 µs for the
    driver alone. For a service's hottest reads only; its columns come back as the driver
    gives them (strings, numbers, bytes: no type of SQLAlchemy's converts them), and it
    makes no database span when tracing is on. Compiled once, for the database's dialect."""

    def __init__(self, db: Database, sql: str, positions: tuple[str, ...] | None) -> None:
        self._db = db
        self._sql = sql
        # the parameters' order for a driver that takes them by position (SQLite's ?)
        self._positions = positions

    async def rows(self, **parameters: object) -> Sequence[tuple[Any, ...]]:
        """The rows the statement selects with these parameters, as the driver gives them."""
        values: tuple[object, ...] | Mapping[str, object] = (
            parameters if self._positions is None else tuple(parameters[name] for name in self._positions)
        )
        if self._db.is_sqlite:
            return self._db._lookup_rows(self._sql, values)
        return await self._db._in_thread(self._db._lookup_rows, self._sql, values)


def _read(engine: Engine, work: Callable[[Connection], T]) -> T:
    # The first statement begins the transaction; leaving the block rolls it back.
    with engine.connect() as connection:
        return work(connection)
