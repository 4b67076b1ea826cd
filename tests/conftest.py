"""Databases for the tests: every integration and end-to-end test that asks for
`service_env` runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from SHOPMESH_TEST_PG_URL (default: the local server); each test
gets throwaway databases, dropped afterwards. Without a server the PostgreSQL
variants are skipped with the reason shown, unless CI is set: there a missing
server fails the run.
"""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get("SHOPMESH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]
SERVICES = ("orders", "inventory", "notifications")


class PostgresServer:
    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def create_database(self, prefix: str) -> str:
        name = f"shopmesh_{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer(PG_URL)
    try:
        with server.admin.connect():
            pass
    except OperationalError as error:
        reason = f"no PostgreSQL server at {server.url.render_as_string()}: {str(error).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so PostgreSQL is required)")
        pytest.skip(reason)
    yield server
    server.admin.dispose()


def database_env(backend: str, data_dir, request) -> tuple[dict, list[str]]:
    """Environment variables giving each service its own database; and the PostgreSQL URLs to drop."""
    env = {"SHOPMESH_DATA_DIR": str(data_dir)}
    created = []
    if backend == "postgresql":
        server = request.getfixturevalue("postgres")
        for service in SERVICES:
            url = server.create_database(service)
            env[f"{service.upper()}_DATABASE_URL"] = url
            created.append(url)
    return env, created


def database_url(env: dict, service: str) -> str:
    """The URL a service gets from env (default: its SQLite file in the data dir)."""
    return env.get(f"{service.upper()}_DATABASE_URL") or f"sqlite:///{env['SHOPMESH_DATA_DIR']}/{service}.db"


@pytest.fixture(params=BACKENDS)
def service_env(request, tmp_path):
    env, created = database_env(request.param, tmp_path, request)
    yield env
    for url in created:
        request.getfixturevalue("postgres").drop_database(url)
