"""Alembic environment of the Orders service's database."""

from alembic import context

from meshkit.migrations import run_migrations
from orders.storage import Base

run_migrations(context, Base.metadata)
