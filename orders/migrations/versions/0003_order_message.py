"""Each order keeps its Order message in wire form, so that GetOrder and ListOrders answer
with one statement; a customer's orders are indexed newest first (ListOrders' first page
reads one page of rows however many orders the customer has).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from meshkit.database import UTCDateTime
from meshkit.money import NANOS_PER_UNIT, Money
from orders import domain
from orders.protos import serialized

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 1000
ORDERS = sa.table(
    "orders",
    sa.column("order_id", sa.String),
    sa.column("customer_email", sa.String),
    sa.column("status", sa.String),
    sa.column("currency", sa.String),
    sa.column("total_units", sa.BigInteger),
    sa.column("total_nanos", sa.Integer),
    sa.column("create_time", UTCDateTime),
    sa.column("update_time", UTCDateTime),
    sa.column("message", sa.LargeBinary),
)
LINES = sa.table(
    "order_lines",
    sa.column("order_id", sa.String),
    sa.column("line_no", sa.Integer),
    sa.column("product_id", sa.String),
    sa.column("quantity", sa.BigInteger),
    sa.column("currency", sa.String),
    sa.column("unit_price_units", sa.BigInteger),
    sa.column("unit_price_nanos", sa.Integer),
)


def _fill_messages(connection: sa.Connection) -> None:
    """Writes the message of every order stored before this revision, BATCH orders at a time."""
    after = ""
    while True:
        rows = connection.execute(
            sa.select(ORDERS).where(ORDERS.c.order_id > after).order_by(ORDERS.c.order_id).limit(BATCH)
        ).all()
        if not rows:
            return
        lines: dict[str, list[domain.OrderLine]] = {row.order_id: [] for row in rows}
        for line in connection.execute(
            sa.select(LINES).where(LINES.c.order_id.in_(list(lines))).order_by(LINES.c.order_id, LINES.c.line_no)
        ):
            price = Money(line.currency, line.unit_price_units * NANOS_PER_UNIT + line.unit_price_nanos)
            lines[line.order_id].append(domain.OrderLine(line.product_id, line.quantity, price))
        messages = [
            {
                "id": row.order_id,
                "message": serialized(
                    domain.Order(
                        row.order_id,
                        row.customer_email,
                        tuple(lines[row.order_id]),
                        domain.OrderStatus(row.status),
                        Money(row.currency, row.total_units * NANOS_PER_UNIT + row.total_nanos),
                        row.create_time,
                        row.update_time,
                    )
                ),
            }
            for row in rows
        ]
        connection.execute(
            sa.update(ORDERS).where(ORDERS.c.order_id == sa.bindparam("id")).values(message=sa.bindparam("message")),
            messages,
        )
        after = rows[-1].order_id


def upgrade() -> None:
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    # Added with a default, so that SQLite adds it in place: changing a column of orders
    # otherwise means copying the table, which the foreign key of order_lines forbids.
    empty = sa.text("X''" if sqlite else "''::bytea")
    op.add_column("orders", sa.Column("message", sa.LargeBinary(), nullable=False, server_default=empty))
    _fill_messages(connection)
    if not sqlite:
        op.alter_column("orders", "message", server_default=None)
    op.drop_index("ix_orders_customer_email", "orders")
    op.create_index("ix_orders_customer_email", "orders", ["customer_email", "create_time", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_customer_email", "orders")
    op.create_index("ix_orders_customer_email", "orders", ["customer_email"])
    op.drop_column("orders", "message")
