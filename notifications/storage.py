"""Notification tables: one row per order event, and the cursor of the event stream.

A notification and the cursor move are committed in one transaction, so after
any crash the consumer resumes exactly after the last event it recorded.
"""

import datetime as dt

from sqlalchemy import BigInteger, Integer, MetaData, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from meshkit.database import NAMING_CONVENTION, Database, UTCDateTime
from notifications import domain

ORDER_EVENTS = "orders"  # the one stream this service follows


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    event_sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str] = mapped_column(String(200))
    last_error: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    send_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When a PENDING notification is next tried; NULL once SENT or FAILED.
    next_attempt_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    trace_parent: Mapped[str | None] = mapped_column(String(55))

    def to_domain(self) -> domain.Notification:
        return domain.Notification(
            notification_id=str(self.id),
            order_id=self.order_id,
            event_sequence=self.event_sequence,
            recipient=self.recipient,
            subject=self.subject,
            body=self.body,
            status=domain.NotificationStatus(self.status),
            attempts=self.attempts,
            message_id=self.message_id,
            last_error=self.last_error,
            create_time=self.create_time,
            update_time=self.update_time,
            send_time=self.send_time,
            trace_parent=self.trace_parent,
        )


class StreamCursorRow(Base):
    __tablename__ = "stream_cursors"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, order_id: str, recipient: str, before_id: int | None, limit: int) -> list[domain.Notification]:
        """Newest first; before_id is the id of the previous page's last notification."""

        def work(session: Session) -> list[domain.Notification]:
            query = select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)
            if order_id:
                query = query.where(NotificationRow.order_id == order_id)
            if recipient:
                query = query.where(NotificationRow.recipient == recipient)
            if before_id is not None:
                query = query.where(NotificationRow.id < before_id)
            return [row.to_domain() for row in session.scalars(query)]

        return await self._db.transaction(work)

    async def cursor(self) -> int:
        """The sequence of the last order event recorded."""
        return await self._db.transaction(
            lambda session: session.scalar(
                select(StreamCursorRow.last_sequence).where(StreamCursorRow.stream == ORDER_EVENTS)
            )
            or 0
        )

    async def record(
        self, sequence: int, order_id: str, email: domain.Email, now: dt.datetime, trace_parent: str | None = None
    ) -> None:
        """Stores the event's notification as PENDING and moves the cursor past it, together."""

        def work(session: Session) -> None:
            cursor = session.get(StreamCursorRow, ORDER_EVENTS, with_for_update=True)
            if cursor is None:
                cursor = StreamCursorRow(stream=ORDER_EVENTS, last_sequence=0)
                session.add(cursor)
            if sequence <= cursor.last_sequence:
                return  # recorded before: a stream re-opened by another consumer instance
            session.add(
                NotificationRow(
                    order_id=order_id,
                    event_sequence=sequence,
                    recipient=email.recipient,
                    subject=email.subject,
                    body=email.body,
                    status=domain.NotificationStatus.PENDING.value,
                    attempts=0,
                    message_id=email.message_id,
                    last_error="",
                    create_time=now,
                    update_time=now,
                    next_attempt_time=now,
                    trace_parent=trace_parent,
                )
            )
            cursor.last_sequence = sequence

        await self._db.transaction(work)

    async def due(self, now: dt.datetime, limit: int) -> list[domain.Notification]:
        """PENDING notifications whose next attempt is due, oldest first."""

        def work(session: Session) -> list[domain.Notification]:
            query = (
                select(NotificationRow)
                .where(
                    NotificationRow.status == domain.NotificationStatus.PENDING.value,
                    NotificationRow.next_attempt_time <= now,
                )
                .order_by(NotificationRow.next_attempt_time, NotificationRow.id)
                .limit(limit)
            )
            return [row.to_domain() for row in session.scalars(query)]

        return await self._db.transaction(work)

    async def next_attempt_time(self) -> dt.datetime | None:
        def work(session: Session) -> dt.datetime | None:
            return session.scalar(
                select(NotificationRow.next_attempt_time)
                .where(NotificationRow.status == domain.NotificationStatus.PENDING.value)
                .order_by(NotificationRow.next_attempt_time)
                .limit(1)
            )

        return await self._db.transaction(work)

    async def mark_sent(self, notification_id: str, now: dt.datetime) -> None:
        def work(session: Session) -> None:
            row = session.get(NotificationRow, int(notification_id))
            row.status = domain.NotificationStatus.SENT.value
            row.attempts += 1
            row.send_time = row.update_time = now
            row.next_attempt_time = None
            row.last_error = ""

        await self._db.transaction(work)

    async def mark_failed_attempt(
        self, notification_id: str, error: str, now: dt.datetime, policy: domain.RetryPolicy
    ) -> domain.NotificationStatus:
        """Counts a failed attempt and schedules the next one, or gives up (FAILED)."""

        def work(session: Session) -> domain.NotificationStatus:
            row = session.get(NotificationRow, int(notification_id))
            row.attempts += 1
            row.last_error = error[:1000]
            row.update_time = now
            delay = policy.delay_after(row.attempts)
            if delay is None:
                row.status = domain.NotificationStatus.FAILED.value
                row.next_attempt_time = None
            else:
                row.next_attempt_time = now + dt.timedelta(seconds=delay)
            return domain.NotificationStatus(row.status)

        return await self._db.transaction(work)
