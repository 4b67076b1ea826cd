"""What the email sender needs of the notification database and of a mail server: only
the methods it calls. The service passes notifications.storage.NotificationStore and a
mailer of notifications.mailer; unit tests pass in-memory fakes."""

import datetime as dt
from email.message import EmailMessage
from typing import Protocol

from notifications import domain


class PendingNotifications(Protocol):
    """The notifications still to send, and the record of each attempt; every method is
    one transaction."""

    async def due(self, now: dt.datetime, limit: int) -> list[domain.Notification]:
        """PENDING notifications whose next attempt is due at now, oldest first."""
        ...

    async def next_attempt_time(self) -> dt.datetime | None:
        """When the next PENDING notification is due, or None if there is none."""
        ...

    async def mark_sent(self, notification_id: str, now: dt.datetime) -> None:
        """Records a PENDING notification as SENT at now, counting the attempt; nothing
        for one that is no longer PENDING, so marking it again changes nothing."""
        ...

    async def mark_failed_attempt(
        self, notification_id: str, error: str, now: dt.datetime, policy: domain.RetryPolicy
    ) -> domain.NotificationStatus:
        """Counts a failed attempt and schedules the next one after policy's delay, or
        gives up (FAILED); the status it leaves."""
        ...


class Mailer(Protocol):
    """Hands emails to a mail server."""

    async def send(self, message: EmailMessage) -> None:
        """Returns once the server accepted message; raises if it did not."""
        ...
