"""Alembic environment of the Inventory service's database."""

from alembic import context

from meshkit.migrations import run_migrations
from inventory.storage import Base

run_migrations(context, Base.metadata)
