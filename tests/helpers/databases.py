"""Where each service of a test keeps its data: a SQLite file in the test's data
directory, or a throwaway PostgreSQL database of its own."""

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from devmesh.postgres import DEFAULT_URL, PostgresServer

PG_URL = os.environ.get("SHOPMESH_TEST_PG_URL", DEFAULT_URL)
BACKENDS = ["sqlite", "postgresql"]
SERVICES = ("orders", "inventory", "notifications")


def database_env(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> tuple[dict[str, str], list[str]]:
    """Environment variables giving each service its own database; and the PostgreSQL URLs to drop."""
    env = {"SHOPMESH_DATA_DIR": str(data_dir)}
    created = []
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        for service in SERVICES:
            url = server.create_database(service)
            env[f"{service.upper()}_DATABASE_URL"] = url
            created.append(url)
    return env, created


def database_url(env: Mapping[str, str], service: str) -> str:
    """The URL a service gets from env (default: its SQLite file in the data dir)."""
    return env.get(f"{service.upper()}_DATABASE_URL") or f"sqlite:///{env['SHOPMESH_DATA_DIR']}/{service}.db"
