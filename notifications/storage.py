"""Notification tables: one row per order event, and the cursor of the event stream.

A notification and the cursor move are committed in one transaction, so after
any crash the consumer resumes exactly after the last event it recorded.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, Row, String, Text, bindparam, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from meshkit.cursors import StreamCursor, StreamCursorColumns
from meshkit.database import Database, UTCDateTime, service_metadata, table_of
from notifications import domain

# stream_cursors' key (its stream column) of the order event stream's row: the one
# stream this service follows
ORDER_EVENTS_CURSOR_KEY = "orders"
# What a malformed event's values are cut to before they are stored (see _row): their
# columns' lengths, and for last_error (unbounded Text) as much as is worth reading
ORDER_ID_LENGTH = 36
RECIPIENT_LENGTH = 254
MESSAGE_ID_LENGTH = 200
ERROR_LENGTH = 1000


class Base(DeclarativeBase):
    """The Notification database's tables."""

    metadata = service_metadata()


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID_LENGTH), index=True)
    event_sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    recipient: Mapped[str] = mapped_column(String(RECIPIENT_LENGTH), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH))
    last_error: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    send_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When a PENDING notification is next tried; NULL once SENT or FAILED.
    next_attempt_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    trace_parent: Mapped[str | None] = mapped_column(String(55))


class StreamCursorRow(StreamCursorColumns, Base):
    """How far the Notification service has recorded the order event stream."""


NOTIFICATIONS = table_of(NotificationRow)
CURSORS = table_of(StreamCursorRow)
PENDING = domain.NotificationStatus.PENDING.value
FAILED = domain.NotificationStatus.FAILED.value
# Built once: a statement object caches its own compiled form's key, which
# is most of what building one per call would cost.
INSERT_NOTIFICATION = insert(NOTIFICATIONS)
ORDER_EVENTS_CURSOR = StreamCursor(CURSORS, ORDER_EVENTS_CURSOR_KEY)
MARK_SENT = (
    update(NOTIFICATIONS)
    # PENDING only: marking again after a commit whose answer was lost changes nothing
    .where(NOTIFICATIONS.c.id == bindparam("p_id"), NOTIFICATIONS.c.status == PENDING)
    .values(
        status=domain.NotificationStatus.SENT.value,
        attempts=NOTIFICATIONS.c.attempts + 1,
        send_time=bindparam("p_now"),
        update_time=bindparam("p_now"),
        next_attempt_time=None,
        last_error="",
    )
)


def _notification(row: Row[Any]) -> domain.Notification:
    return domain.Notification(
        notification_id=str(row.id),
        order_id=row.order_id,
        event_sequence=row.event_sequence,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        status=domain.NotificationStatus(row.status),
        attempts=row.attempts,
        message_id=row.message_id,
        last_error=row.last_error,
        create_time=row.create_time,
        update_time=row.update_time,
        send_time=row.send_time,
        trace_parent=row.trace_parent,
    )


@dataclass(frozen=True)
class RecordedEvent:
    """An order event as the notification it becomes: its email, or what is kept of it and
    why none could be written (failure)."""

    sequence: int
    order_id: str
    email: domain.Email
    trace_parent: str | None = None
    failure: str | None = None


def _row(event: RecordedEvent, now: dt.datetime) -> dict[str, Any]:
    email = event.email
    return {
        # cut to their columns: a malformed event must still be recorded as FAILED
        "order_id": event.order_id[:ORDER_ID_LENGTH],
        "event_sequence": event.sequence,
        "recipient": email.recipient[:RECIPIENT_LENGTH],
        "subject": email.subject,
        "body": email.body,
        "status": PENDING if event.failure is None else FAILED,
        "attempts": 0,
        "message_id": email.message_id[:MESSAGE_ID_LENGTH],
        "last_error": (event.failure or "")[:ERROR_LENGTH],
        "create_time": now,
        "update_time": now,
        "next_attempt_time": now if event.failure is None else None,
        "trace_parent": event.trace_parent,
    }


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, order_id: str, recipient: str, before_id: int | None, limit: int) -> list[domain.Notification]:
        """Newest first; before_id is the id of the previous page's last notification."""
        query = select(NOTIFICATIONS).order_by(NOTIFICATIONS.c.id.desc()).limit(limit)
        if order_id:
            query = query.where(NOTIFICATIONS.c.order_id == order_id)
        if recipient:
            query = query.where(NOTIFICATIONS.c.recipient == recipient)
        if before_id is not None:
            query = query.where(NOTIFICATIONS.c.id < before_id)
        return await self._db.read(lambda connection: [_notification(row) for row in connection.execute(query)])

    async def cursor(self) -> int:
        """The sequence of the last order event recorded."""
        return await self._db.read(ORDER_EVENTS_CURSOR.read)

    async def record(self, events: list[RecordedEvent], now: dt.datetime) -> None:
        """Stores each event's notification as PENDING (or FAILED for its reason, never to
        be sent) and moves the cursor past the last, together in one transaction."""

        def work(connection: Connection) -> None:
            last = ORDER_EVENTS_CURSOR.claim(connection)
            # recorded before: a stream re-opened by another consumer instance
            new = [event for event in events if event.sequence > last]
            if not new:
                return
            connection.execute(INSERT_NOTIFICATION, [_row(event, now) for event in new])
            ORDER_EVENTS_CURSOR.move(connection, new[-1].sequence)

        await self._db.transaction(work)

    async def due(self, now: dt.datetime, limit: int) -> list[domain.Notification]:
        """PENDING notifications whose next attempt is due, oldest first."""
        query = (
            select(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.status == PENDING, NOTIFICATIONS.c.next_attempt_time <= now)
            .order_by(NOTIFICATIONS.c.next_attempt_time, NOTIFICATIONS.c.id)
            .limit(limit)
        )
        return await self._db.read(lambda connection: [_notification(row) for row in connection.execute(query)])

    async def next_attempt_time(self) -> dt.datetime | None:
        query = (
            select(NOTIFICATIONS.c.next_attempt_time)
            .where(NOTIFICATIONS.c.status == PENDING)
            .order_by(NOTIFICATIONS.c.next_attempt_time)
            .limit(1)
        )
        return await self._db.read(lambda connection: connection.scalar(query))

    async def mark_sent(self, notification_id: str, now: dt.datetime) -> None:
        parameters = {"p_id": int(notification_id), "p_now": now}
        await self._db.transaction(lambda connection: connection.execute(MARK_SENT, parameters))

    async def mark_failed_attempt(
        self, notification_id: str, error: str, now: dt.datetime, policy: domain.RetryPolicy
    ) -> domain.NotificationStatus:
        """Counts a failed attempt and schedules the next one, or gives up (FAILED)."""
        by_id = NOTIFICATIONS.c.id == int(notification_id)

        def work(connection: Connection) -> domain.NotificationStatus:
            attempts = (
                connection.execute(select(NotificationRow.attempts).where(by_id).with_for_update()).scalar_one() + 1
            )
            delay = policy.delay_after(attempts)
            if delay is None:
                status, next_time = domain.NotificationStatus.FAILED, None
            else:
                status, next_time = domain.NotificationStatus.PENDING, now + dt.timedelta(seconds=delay)
            connection.execute(
                update(NOTIFICATIONS)
                .where(by_id)
                .values(
                    attempts=attempts,
                    last_error=error[:ERROR_LENGTH],
                    update_time=now,
                    status=status.value,
                    next_attempt_time=next_time,
                )
            )
            return status

        return await self._db.transaction(work)
