"""Each service's Alembic history builds exactly the schema its models declare."""

import asyncio
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
        differences = compare_metadata(MigrationContext.configure(connection), importlib.import_module(f"{service}.storage").Base.metadata)
    assert differences == []
