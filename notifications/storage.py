"""Notification table and its queries."""

import datetime as dt

from sqlalchemy import BigInteger, Integer, MetaData, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from meshkit.database import NAMING_CONVENTION, Database, UTCDateTime
from notifications import domain


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
        )


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
