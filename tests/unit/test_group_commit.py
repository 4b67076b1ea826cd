"""SQLite's writer commits the transactions that queue up together, each in a savepoint."""

import asyncio
import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select
from sqlalchemy.exc import IntegrityError

from meshkit.database import Database

METADATA = MetaData()
ROWS = Table("rows", METADATA, Column("id", Integer, primary_key=True))


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    METADATA.create_all(database.engine)
    yield database
    asyncio.run(database.close())


def _insert(row_id: int):
    def work(connection):
        connection.execute(insert(ROWS), {"id": row_id})
        return row_id

    return work


def _stored(db: Database) -> list[int]:
    with db.engine.connect() as connection:
        return sorted(connection.scalars(select(ROWS.c.id)))


async def _queued_behind(db: Database, works: list) -> list:
    """works, queued while the writer is held in a first transaction: one group."""
    held, queued = threading.Event(), threading.Event()

    def first(connection):
        held.set()
        queued.wait(5)
        return "first"

    blocker = asyncio.ensure_future(db.transaction(first))
    await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
    tasks = [asyncio.ensure_future(db.transaction(work)) for work in works]
    await asyncio.sleep(0.05)  # every transaction is in the writer's queue
    queued.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_a_transaction_that_fails_in_a_group_is_rolled_back_alone(db):
    commits = []
    event.listen(db.engine, "commit", lambda connection: commits.append(1))
    outcomes = asyncio.run(_queued_behind(db, [_insert(1), _insert(2), _insert(1), _insert(3)]))
    # the first transaction alone, then the four queued behind it together
    assert len(commits) == 2
    assert outcomes[:2] == [1, 2] and outcomes[3] == 3
    assert isinstance(outcomes[2], IntegrityError)
    assert _stored(db) == [1, 2, 3]


def test_a_lone_transaction_that_fails_leaves_nothing(db):
    def half_done(connection):
        connection.execute(insert(ROWS), {"id": 7})
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        asyncio.run(db.transaction(half_done))
    assert _stored(db) == []


def test_a_transaction_cancelled_before_it_started_is_not_run(db):
    async def scenario():
        held, release = threading.Event(), threading.Event()

        def first(connection):
            held.set()
            release.wait(5)

        blocker = asyncio.ensure_future(db.transaction(first))
        await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
        cancelled = asyncio.ensure_future(db.transaction(_insert(5)))
        kept = asyncio.ensure_future(db.transaction(_insert(6)))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        await asyncio.sleep(0.05)  # the cancellation reaches the queued transaction
        release.set()
        await blocker
        return await kept

    assert asyncio.run(scenario()) == 6
    assert _stored(db) == [6]
