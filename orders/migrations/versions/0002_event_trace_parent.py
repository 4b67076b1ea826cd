"""Each order event remembers the trace of the call that made it.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_events") as batch:
        batch.drop_column("trace_parent")
