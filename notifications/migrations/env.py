"""Alembic environment of the Notifications service's database."""

from alembic import context

from meshkit.migrations import run_migrations
from notifications.storage import Base

run_migrations(context, Base.metadata)
