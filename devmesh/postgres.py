"""Throwaway databases on a PostgreSQL server, for the tests and the benchmark."""

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class PostgresServer:
    """url names a database to connect to for CREATE/DROP DATABASE (e.g. postgres)."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def ping(self) -> None:
        """Raises sqlalchemy.exc.OperationalError when the server cannot be reached."""
        with self.admin.connect():
            pass

    def create_database(self, prefix: str) -> str:
        name = f"shopmesh_{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self.admin.dispose()
