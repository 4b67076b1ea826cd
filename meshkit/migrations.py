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
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text

from meshkit import config
from meshkit.database import Database


def alembic_config(service: str) -> Config:
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


def run_migrations(context, metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        # The command line below: connect to the configured database ourselves.
        db = Database(context.config.get_main_option("sqlalchemy.url"))
        with db.engine.begin() as connection:
            _run(context, connection, metadata)
        db.engine.dispose()
    else:
        _run(context, connection, metadata)


def _run(context, connection, metadata: MetaData) -> None:
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
    sys.exit(main())
