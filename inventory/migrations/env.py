"""Alembic environment of the Inventory service's database."""

from alembic import context

from inventory.storage import Base
from meshkit.migrations import run_migrations

run_migrations(context, Base.metadata)
