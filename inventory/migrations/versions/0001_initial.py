"""Products, reservations and their lines.

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
        "products",
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_units", sa.BigInteger(), nullable=False),
        sa.Column("price_nanos", sa.Integer(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name="pk_products"),
    )
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", name="pk_reservations"),
    )
    op.create_table(
        "reservation_lines",
        sa.Column("reservation_id", sa.String(128), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit_price_units", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_nanos", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reservation_id"], ["reservations.reservation_id"], name="fk_reservation_lines_reservation_id_reservations"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.product_id"], name="fk_reservation_lines_product_id_products"
        ),
        sa.PrimaryKeyConstraint("reservation_id", "line_no", name="pk_reservation_lines"),
    )


def downgrade() -> None:
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
    op.drop_table("products")
