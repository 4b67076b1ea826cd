"""Orders, their lines, their event log and the event sequence counter.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from meshkit.database import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=True),
        sa.Column("customer_email", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_units", sa.BigInteger(), nullable=False),
        sa.Column("total_nanos", sa.Integer(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
        sa.UniqueConstraint("request_id", name="uq_orders_request_id"),
    )
    op.create_index("ix_orders_create_time", "orders", ["create_time"])
    op.create_index("ix_orders_customer_email", "orders", ["customer_email"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit_price_units", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_nanos", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_order_lines_order_id_orders"),
        sa.PrimaryKeyConstraint("order_id", "line_no", name="pk_order_lines"),
    )
    op.create_table(
        "order_events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(16), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_order_events"),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id"])
    counter = op.create_table(
        "order_event_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_event_counter"),
    )
    # The one row every event-writing transaction increments (see orders.storage).
    op.bulk_insert(counter, [{"id": 1, "last_sequence": 0}])


def downgrade() -> None:
    op.drop_table("order_event_counter")
    op.drop_index("ix_order_events_order_id", "order_events")
    op.drop_table("order_events")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_customer_email", "orders")
    op.drop_index("ix_orders_create_time", "orders")
    op.drop_table("orders")
