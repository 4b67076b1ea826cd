"""Each service's Alembic history builds exactly the schema its models declare."""

import asyncio
import importlib

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from meshkit import migrations
from meshkit.database import Database
from tests.conftest import SERVICES, database_url


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
