"""Each service's Alembic history builds exactly the schema its models declare."""

import asyncio
import datetime as dt
import importlib
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from meshkit import migrations
from meshkit.database import Database
from meshkit.money import Money
from orders import domain
from orders.protos import serialized
from orders.storage import OrderStore
from tests.helpers.databases import SERVICES, database_url


@pytest.fixture
def database(request, service_env):
    db = Database(database_url(service_env, request.param))
    yield request.param, db
    asyncio.run(db.close())


@pytest.mark.parametrize("database", SERVICES, indirect=True)
def test_migrations_match_the_models(database):
    service, db = database
    metadata = importlib.import_module(f"{service}.storage").Base.metadata
    migrations.upgrade(db, service)
    migrations.upgrade(db, service)  # a second start changes nothing
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


@pytest.mark.parametrize("database", SERVICES, indirect=True)
def test_migrations_go_down_and_up_again(database):
    service, db = database
    migrations.upgrade(db, service)
    with db.engine.begin() as connection:
        cfg = migrations.alembic_config(service)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    migrations.upgrade(db, service)
    metadata = importlib.import_module(f"{service}.storage").Base.metadata
    assert set(metadata.tables) <= set(inspect(db.engine).get_table_names())


@pytest.mark.parametrize("database", ["orders"], indirect=True)
def test_replicas_migrating_at_once_from_the_command_line_all_succeed(database, service_env):
    """What every Order replica's init container runs as a rollout starts them together."""
    service, db = database
    command_line = [sys.executable, "-m", "meshkit.migrations", service, "upgrade", "head"]
    replicas = [subprocess.Popen(command_line, env=service_env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for replica in replicas:
        _, errors = replica.communicate(timeout=120)
        assert replica.returncode == 0, errors
    with db.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), importlib.import_module(f"{service}.storage").Base.metadata
        )
    assert differences == []


@pytest.mark.parametrize("database", ["orders"], indirect=True)
def test_orders_stored_before_revision_0003_get_their_message(database):
    """Revision 0003 writes the Order message of every order it finds: GetOrder answers from it."""
    service, db = database
    created = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    with db.engine.begin() as connection:
        cfg = migrations.alembic_config(service)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0002")
        connection.exec_driver_sql(
            "INSERT INTO orders (order_id, customer_email, status, currency, total_units, total_nanos,"
            " create_time, update_time) VALUES ('O-1', 'old@example.com', 'CONFIRMED', 'EUR', 7, 500000000,"
            " '2026-01-02 03:04:05.678000', '2026-01-02 03:04:05.678000')"
        )
        connection.exec_driver_sql("INSERT INTO order_lines VALUES ('O-1', 0, 'P-1', 3, 'EUR', 2, 500000000)")
    migrations.upgrade(db, service)
    expected = domain.Order(
        "O-1",
        "old@example.com",
        (domain.OrderLine("P-1", 3, Money("EUR", 2_500_000_000)),),
        domain.OrderStatus.CONFIRMED,
        Money("EUR", 7_500_000_000),
        created,
        created,
    )
    stored = asyncio.run(OrderStore(db).stored("O-1"))
    assert (stored.customer_email, stored.message) == ("old@example.com", serialized(expected))
