"""SQLite's one writer thread, committing together the transactions that queued up while
it ran the previous ones (group commit).

Each transaction queued runs in a SAVEPOINT of one database transaction, so that one that
raises is rolled back alone; the group commits once. Under load most of a commit's work
(the pages written to the WAL, the B-tree pages every order touches alike) is shared, and
so is SQLAlchemy's per-transaction work. A transaction's caller hears of it only after
the group's commit, as before: nothing is reported done that could still be rolled back.
A lone transaction runs without a savepoint, as a plain one.
"""

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sqlalchemy.engine import Connection, Engine

# The most transactions committed together: bounds how long the first of a group waits
# for its commit (a few milliseconds), which callers with a deadline rely on.
MAX_GROUP = 32

_Work = tuple[contextvars.Context, Callable[[Connection], Any], Future]


class GroupCommitter:
    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    async def transaction(self, work: Callable[[Connection], Any]) -> Any:
        """work(connection)'s result once committed; its exception if it raised (rolled back)."""
        future: Future = Future()
        # The caller's context goes along: its trace and its request id.
        self._queue.put((contextvars.copy_context(), work, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Commits what is queued, then ends the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        closing = False
        while not closing:
            group: list[_Work] = []
            item = self._queue.get()
            while item is not None:
                # as a thread pool does: a transaction whose caller was cancelled before it
                # started is dropped; once started, it runs to its end
                if item[2].set_running_or_notify_cancel():
                    group.append(item)
                if len(group) == self._max_group:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            closing = item is None
            if group:
                self._commit(group)

    def _commit(self, group: list[_Work]) -> None:
        # The group's BEGIN and COMMIT belong to its first transaction's trace (in a copy of
        # its context: the first enters its own again), each transaction's statements,
        # savepoint included, to its own.
        outcomes = group[0][0].copy().run(self._outcomes, group)
        for (_, _, future), (result, error) in zip(group, outcomes, strict=True):
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _outcomes(self, group: list[_Work]) -> list[tuple[Any, BaseException | None]]:
        try:
            with self._engine.begin() as connection:
                if len(group) == 1:
                    return [(group[0][1](connection), None)]
                return [context.run(_in_savepoint, connection, work) for context, work, _ in group]
        except Exception as error:  # noqa: BLE001 - handed to every caller of the group
            # The begin or the commit failed (or a lone transaction raised): all of it is rolled back.
            return [(None, error)] * len(group)


def _in_savepoint(connection: Connection, work: Callable[[Connection], Any]) -> tuple[Any, BaseException | None]:
    savepoint = connection.begin_nested()
    try:
        result = work(connection)
    except Exception as error:  # noqa: BLE001 - this transaction's own failure, its caller's to handle
        savepoint.rollback()
        return None, error
    savepoint.commit()
    return result, None
