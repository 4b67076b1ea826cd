"""Where a service stands in a stream it follows (the Order service's events): a row of its
own database's stream_cursors table, moved in the same transaction as what the service
made of the events, so that after any crash it resumes just after the last one it kept."""

from sqlalchemy import BigInteger, Connection, String, Table, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column


class StreamCursorColumns:
    """The stream_cursors table, mixed into a service's declarative base:
    `class StreamCursorRow(StreamCursorColumns, Base): ...`."""

    __tablename__ = "stream_cursors"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class StreamCursor:
    """One stream's row (key) of a stream_cursors table, its statements built once."""

    def __init__(self, table: Table, key: str) -> None:
        this_stream = table.c.stream == key
        self._read = select(table.c.last_sequence).where(this_stream)
        self._lock = self._read.with_for_update()
        self._create = insert(table).values(stream=key, last_sequence=0)
        self._move = update(table).where(this_stream).values(last_sequence=bindparam("p_sequence"))

    def read(self, connection: Connection) -> int:
        """The last sequence kept (0 before the first)."""
        return connection.scalar(self._read) or 0

    def claim(self, connection: Connection) -> int:
        """The last sequence kept, its row locked (made at 0 the first time) until the
        transaction ends, so that two followers never keep the same events."""
        last: int | None = connection.scalar(self._lock)
        if last is None:
            connection.execute(self._create)
            return 0
        return last

    def move(self, connection: Connection, sequence: int) -> None:
        """Past sequence, in the claiming transaction."""
        connection.execute(self._move, {"p_sequence": sequence})
