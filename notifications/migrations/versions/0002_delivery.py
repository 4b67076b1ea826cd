"""Delivery: when a pending notification is next tried, and the stream cursor.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from meshkit.database import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("next_attempt_time", UTCDateTime(), nullable=True))
        batch.create_index("ix_notifications_next_attempt_time", ["next_attempt_time"])
    op.create_table(
        "stream_cursors",
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_stream_cursors"),
    )


def downgrade() -> None:
    op.drop_table("stream_cursors")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_next_attempt_time")
        batch.drop_column("next_attempt_time")
