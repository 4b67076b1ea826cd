"""Databases and mesh identities for the tests: every integration and end-to-end test
that asks for `service_env` runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from SHOPMESH_TEST_PG_URL (default: the local server); each test
gets throwaway databases, dropped afterwards. Without a server the PostgreSQL
variants are skipped with the reason shown, unless CI is set: there a missing
server fails the run.
"""

import os

import pytest
from sqlalchemy.exc import OperationalError

from devmesh import mesh_identity
from devmesh.postgres import DEFAULT_URL, PostgresServer
from meshkit import mesh_tls

PG_URL = os.environ.get("SHOPMESH_TEST_PG_URL", DEFAULT_URL)
BACKENDS = ["sqlite", "postgresql"]
SERVICES = ("orders", "inventory", "notifications")


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer(PG_URL)
    try:
        server.ping()
    except OperationalError as error:
        reason = f"no PostgreSQL server at {server.url.render_as_string()}: {str(error).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so PostgreSQL is required)")
        pytest.skip(reason)
    yield server
    server.close()


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


@pytest.fixture(scope="session")
def identities(tmp_path_factory) -> mesh_identity.MeshIdentity:
    """A mesh CA and every identity, made once for the in-process tests."""
    return mesh_identity.ensure(mesh_identity.MeshIdentity(tmp_path_factory.mktemp("identities")))


@pytest.fixture(scope="session")
def envoy_tls(identities) -> mesh_tls.MeshTls:
    """Envoy's identity. In-process services call each other directly, without an Envoy
    between them, so each serves and calls with this identity in its place."""
    return mesh_tls.MeshTls(identities.directory(mesh_tls.ENVOY), mesh_tls.ENVOY)


@pytest.fixture(params=BACKENDS)
def service_env(request, tmp_path, envoy_tls):
    env, created = database_env(request.param, tmp_path, request)
    env["MESH_TLS_DIR"] = str(envoy_tls.directory)
    yield env
    for url in created:
        request.getfixturevalue("postgres").drop_database(url)
