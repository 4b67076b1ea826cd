"""Alembic, one migration history per service (<service>/migrations), applied at
service start. Several processes may start at once on one PostgreSQL database:
an advisory lock lets one of them migrate while the others wait.

A developer adds a revision with
    python -m meshkit.migrations <service> revision -m "what changes" --autogenerate
and a deployment may migrate before the service starts (Kubernetes: an init container) with
    python -m meshkit.migrations <service> upgrade head
which takes the same lock as a starting service, so replicas may run it at once.
"""

import argparse
import asyncio
from contextlib import AbstractContextManager
from typing import Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from meshkit import config
from meshkit.database import Database


class MigrationEnvironment(Protocol):
    """What a service's migrations/env.py hands over: the module alembic.context, which
    stands for the Alembic environment that runs it."""

    @property
    def config(self) -> Config: ...

    def configure(self, *, connection: Connection, target_metadata: MetaData, render_as_batch: bool) -> None: ...

    def begin_transaction(self) -> AbstractContextManager[object]: ...

    def run_migrations(self) -> None: ...


def alembic_config(service: str) -> Config:
    """The Alembic configuration of a service's migration history (<service>/migrations)."""
    cfg = Config()
    cfg.set_main_option("script_location", f"{service}:migrations")
    return cfg


def upgrade(db: Database, service: str) -> None:
    """Brings the service's database to the newest revision."""
    with db.engine.begin() as connection:
        if not db.is_sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"migrate-{service}"})
        cfg = alembic_config(service)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def run_migrations(context: MigrationEnvironment, metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        # The command line below: connect to the configured database ourselves.
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("Alembic was given neither a connection nor sqlalchemy.url")
        db = Database(url)
        with db.engine.begin() as connection:
            _run(context, connection, metadata)
        db.engine.dispose()
    else:
        _run(context, connection, metadata)


def _run(context: MigrationEnvironment, connection: Connection, metadata: MetaData) -> None:
    # SQLite alters tables by copying them ("batch" mode).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    parser = argparse.ArgumentParser(description="Alembic for one ShopMesh service")
    parser.add_argument("service", choices=["orders", "inventory", "notifications"])
    parser.add_argument("alembic_args", nargs=argparse.REMAINDER, help="e.g. revision -m '...' --autogenerate")
    args = parser.parse_args()
    from alembic.config import CommandLine

    cfg = alembic_config(args.service)
    url = config.database_url(config.environ(), f"{args.service.upper()}_DATABASE_URL", f"{args.service}.db")
    if args.alembic_args == ["upgrade", "head"]:
        db = Database(url)
        try:
            upgrade(db, args.service)
        finally:
            asyncio.run(db.close())
        return
    cfg.set_main_option("sqlalchemy.url", url)
    cli = CommandLine()
    options = cli.parser.parse_args(args.alembic_args)
    cli.run_cmd(cfg, options)


if __name__ == "__main__":
    main()
