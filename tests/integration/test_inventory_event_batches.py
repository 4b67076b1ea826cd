"""Inventory applies a batch of order events in one transaction without deadlocking the
reservations taken meanwhile: a batch that moves one order's units and then another's
must lock products in the order every ReserveStock does (PostgreSQL; SQLite runs one
writer at a time)."""

import asyncio
import datetime as dt

import pytest

from inventory import domain
from inventory.storage import InventoryStore
from meshkit import migrations
from meshkit.database import Database
from meshkit.money import Money
from tests.helpers.databases import database_url

WAIT = dt.timedelta(minutes=5)
ROUNDS = 30


@pytest.fixture
async def store(service_env):
    db = Database(database_url(service_env, "inventory"))
    migrations.upgrade(db, "inventory")
    yield InventoryStore(db)
    await db.close()


def _line(product_id: str) -> domain.ReservationLine:
    return domain.ReservationLine(product_id, 1)


async def test_batches_and_reservations_crossing_products_all_commit(store):
    for product_id in ("A", "B"):
        await store.create_product(domain.Product(product_id, product_id, Money("EUR", 1), 10_000))
    sequence = 0
    for round_no in range(ROUNDS):
        # each order of the batch holds one product, in the order opposite to product ids
        await store.reserve(f"b-{round_no}", [_line("B")], WAIT)
        await store.reserve(f"a-{round_no}", [_line("A")], WAIT)
        batch = [(sequence + 1, f"b-{round_no}", "PENDING"), (sequence + 2, f"a-{round_no}", "PENDING")]
        sequence += 2
        # reservations of both products at the same moment, taking them in product id order
        outcomes = await asyncio.gather(
            store.apply_order_events(batch),
            *(store.reserve(f"x-{round_no}-{i}", [_line("A"), _line("B")], WAIT) for i in range(4)),
            return_exceptions=True,
        )
        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    books = {book.product_id: book for book in await store.books()}
    # every batched order's unit is held, every other reservation's is awaiting its order
    assert [(books[p].held, books[p].awaiting_order) for p in "AB"] == [(ROUNDS, 4 * ROUNDS)] * 2
    assert await store.cursor() == sequence
