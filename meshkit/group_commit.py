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
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

# The most transactions committed together: bounds how long the first of a group waits
# for its commit (a few milliseconds), which callers with a deadline rely on.
MAX_GROUP = 32


class _Transaction(Generic[T]):
    """One caller's work and the future its caller awaits, with what the work gave. The
    writer's queue holds them whatever their result (_Transaction[Any])."""

    __slots__ = ("_error", "_result", "_work", "context", "future")

    _result: T

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.context = contextvars.copy_context()
        self.future: Future[T] = Future()
        self._work = work
        self._error: BaseException | None = None

    def start(self) -> bool:
        """False if its caller was cancelled meanwhile (then it must not run); from now on it cannot be."""
        return self.future.set_running_or_notify_cancel()

    def run(self, connection: Connection) -> None:
        """Runs its work in connection's transaction; an error propagates."""
        self._result = self._work(connection)

    def run_in_savepoint(self, connection: Connection) -> None:
        """Runs its work in a savepoint, in its caller's context (its trace, its request id);
        an error rolls back the savepoint alone and is kept for its caller."""
        self.context.run(self._in_savepoint, connection)

    def _in_savepoint(self, connection: Connection) -> None:
        savepoint = connection.begin_nested()
        try:
            self._result = self._work(connection)
        except Exception as error:  # noqa: BLE001 - this transaction's own failure, its caller's to handle
            savepoint.rollback()
            self._error = error
            return
        savepoint.commit()

    def committed(self) -> None:
        """Hands its caller the result, or the error its savepoint met, once the group is committed."""
        if self._error is None:
            self.future.set_result(self._result)
        else:
            self.future.set_exception(self._error)

    def failed(self, error: BaseException) -> None:
        """Hands its caller the error that rolled back the whole group."""
        self.future.set_exception(error)


class GroupCommitter:
    """The writer thread and its queue of transactions (see the module's docstring)."""

    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Transaction[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """work(connection)'s result once committed; its exception if it raised (rolled back)."""
        transaction = _Transaction(work)
        self._queue.put(transaction)
        return await asyncio.wrap_future(transaction.future)

    def close(self) -> None:
        """Commits what is queued, then ends the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        closing = False
        while not closing:
            group: list[_Transaction[Any]] = []
            item = self._queue.get()
            while item is not None:
                # as a thread pool does: a transaction whose caller was cancelled before it
                # started is dropped; once started, it runs to its end
                if item.start():
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

    def _commit(self, group: list[_Transaction[Any]]) -> None:
        # The group's BEGIN and COMMIT belong to its first transaction's trace (in a copy of
        # its context: the first enters its own again), each transaction's statements,
        # savepoint included, to its own.
        error = group[0].context.copy().run(self._in_one_transaction, group)
        for transaction in group:
            if error is None:
                transaction.committed()
            else:
                transaction.failed(error)

    def _in_one_transaction(self, group: list[_Transaction[Any]]) -> Exception | None:
        """Runs the group in one database transaction; the error that rolled all of it back, if any."""
        try:
            with self._engine.begin() as connection:
                if len(group) == 1:
                    group[0].run(connection)
                else:
                    for transaction in group:
                        transaction.run_in_savepoint(connection)
        except Exception as error:  # noqa: BLE001 - handed to every caller of the group
            # The begin or the commit failed (or a lone transaction raised): all of it is rolled back.
            return error
        return None
