"""Databases and mesh identities for the tests: every integration and end-to-end test
that asks for `service_env` runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from SHOPMESH_TEST_PG_URL (default: the local server); each test
gets throwaway databases, dropped afterwards. Without a server the PostgreSQL
variants are skipped with the reason shown, unless CI is set: there a missing
server fails the run.
"""

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from devmesh import mesh_identity
from devmesh.postgres import PostgresServer
from meshkit import mesh_tls
from tests.helpers.databases import BACKENDS, PG_URL, database_env


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
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


@pytest.fixture
def cores_to_itself(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Held by the tests that fill both cores (the benchmark runs, rotation under load) and
    by the tests that time calls, so that on two test workers one never runs beside the
    other: a benchmark on one worker tripled the p99 the other was measuring. A file lock in
    the directory every worker's temporary directory is in."""
    with open(tmp_path_factory.getbasetemp().parent / "cores.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
        fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def identities(tmp_path_factory: pytest.TempPathFactory) -> mesh_identity.MeshIdentity:
    """A mesh CA and every identity, made once for the in-process tests."""
    return mesh_identity.ensure(mesh_identity.MeshIdentity(tmp_path_factory.mktemp("identities")))


@pytest.fixture(scope="session")
def envoy_tls(identities: mesh_identity.MeshIdentity) -> mesh_tls.MeshTls:
    """Envoy's identity. In-process services call each other directly, without an Envoy
    between them, so each serves and calls with this identity in its place."""
    return mesh_tls.MeshTls(identities.directory(mesh_tls.ENVOY), mesh_tls.ENVOY)


@pytest.fixture(params=BACKENDS)
def service_env(
    request: pytest.FixtureRequest, tmp_path: Path, envoy_tls: mesh_tls.MeshTls
) -> Iterator[dict[str, str]]:
    """Each service's database on this run's backend, and the identity in-process services present."""
    env, created = database_env(request.param, tmp_path, request)
    env["MESH_TLS_DIR"] = str(envoy_tls.directory)
    yield env
    for url in created:
        request.getfixturevalue("postgres").drop_database(url)
