"""The stock books: what each product received, until when a reservation waits for its
order, and how far Inventory has followed the order event stream.

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
    with op.batch_alter_table("products") as batch:
        for column in ("received", "awaiting", "held", "shipped"):
            batch.add_column(sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"))
    # Until now nothing was known to have left the shop: every reservation still holding
    # stock waits for its order (the first check finds it), and what a product received is
    # what is free plus that.
    op.execute(
        "UPDATE products SET awaiting = COALESCE((SELECT SUM(l.quantity) FROM reservation_lines l "
        "JOIN reservations r ON r.reservation_id = l.reservation_id "
        "WHERE l.product_id = products.product_id AND r.status = 'RESERVED'), 0)"
    )
    op.execute("UPDATE products SET received = available + awaiting")
    with op.batch_alter_table("reservations") as batch:
        # existing reservations are due at once: the first check finds their orders
        batch.add_column(sa.Column("expire_time", UTCDateTime(), nullable=True))
        batch.create_index("ix_reservations_status_expire_time", ["status", "expire_time"])
    op.execute("UPDATE reservations SET expire_time = create_time")
    with op.batch_alter_table("reservation_lines") as batch:
        batch.create_index("ix_reservation_lines_product_id", ["product_id"])
    op.create_table(
        "stream_cursors",
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_stream_cursors"),
    )


def downgrade() -> None:
    op.drop_table("stream_cursors")
    with op.batch_alter_table("reservation_lines") as batch:
        batch.drop_index("ix_reservation_lines_product_id")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_index("ix_reservations_status_expire_time")
        batch.drop_column("expire_time")
    with op.batch_alter_table("products") as batch:
        for column in ("shipped", "held", "awaiting", "received"):
            batch.drop_column(column)
