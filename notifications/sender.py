"""Sends pending notifications, oldest first, and tries failed ones again after
the retry policy's back-off. A notification is SENT only once the mail server
has accepted it.

When the database is away for a while, sending goes on after a pause (meshkit.resume).
An email the mail server accepted while its SENT could not be recorded is remembered
and recorded first, before anything is sent again: the outage sends nothing twice.
"""

import asyncio
import datetime as dt
import logging

from opentelemetry import trace

from meshkit import resume, telemetry
from meshkit.database import utcnow
from notifications import domain
from notifications.mailer import build_message
from notifications.ports import Mailer, PendingNotifications

log = logging.getLogger(__name__)

BATCH_SIZE = 100
# After the database failed: no busy loop, and short next to any outage.
PAUSE_SECONDS = 1.0


class Sender:
    """Hands due notifications to mailer, and records in store what became of each."""

    def __init__(
        self,
        store: PendingNotifications,
        mailer: Mailer,
        sender_address: str,
        policy: domain.RetryPolicy,
        pause: float = PAUSE_SECONDS,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._sender_address = sender_address
        self._policy = policy
        self._pause = pause
        self._wake = asyncio.Event()
        # notification id -> when the mail server accepted it, until SENT is recorded
        self._accepted: dict[str, dt.datetime] = {}
        self._tracer = trace.get_tracer(__name__)

    def wake(self) -> None:
        """A notification was recorded: send it now."""
        self._wake.set()

    async def run(self) -> None:
        await resume.keep_going("sending emails", self._send_due, self._pause)

    async def _send_due(self) -> None:
        while True:
            self._wake.clear()
            if await self.send_due() == BATCH_SIZE:
                continue
            await self._sleep_until_due()

    async def send_due(self) -> int:
        """One pass of run(): records what the mail server accepted before, then tries the
        notifications due now (at most BATCH_SIZE), oldest first. How many were due."""
        await self._record_accepted()
        due = await self._store.due(utcnow(), BATCH_SIZE)
        for notification in due:
            await self._attempt(notification)
        return len(due)

    async def _sleep_until_due(self) -> None:
        next_time = await self._store.next_attempt_time()
        timeout = None if next_time is None else max(0.0, (next_time - utcnow()).total_seconds())
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _attempt(self, notification: domain.Notification) -> None:
        try:
            message = build_message(notification, self._sender_address)
        except ValueError as error:
            await self._store.mark_failed_attempt(
                notification.notification_id, f"cannot build the email: {error}", utcnow(), domain.RetryPolicy(0)
            )
            return
        try:
            with self._tracer.start_as_current_span(
                "send email",
                kind=trace.SpanKind.CLIENT,
                links=telemetry.link_to(notification.trace_parent),
                attributes={
                    "shopmesh.notification_id": notification.notification_id,
                    "shopmesh.mailer": str(self._mailer),
                },
            ):
                await self._mailer.send(message)
        except Exception as error:  # noqa: BLE001 - any failure to hand over is retried
            status = await self._store.mark_failed_attempt(
                notification.notification_id, f"{type(error).__name__}: {error}", utcnow(), self._policy
            )
            log.warning(
                "email not accepted",
                extra={"notification_id": notification.notification_id, "error": str(error), "status": status.value},
            )
            return
        self._accepted[notification.notification_id] = utcnow()
        await self._record_accepted()
        log.info(
            "email sent", extra={"notification_id": notification.notification_id, "order_id": notification.order_id}
        )

    async def _record_accepted(self) -> None:
        """Records as SENT what the mail server accepted (first what an outage kept unrecorded)."""
        for notification_id, accepted_at in list(self._accepted.items()):
            await self._store.mark_sent(notification_id, accepted_at)
            del self._accepted[notification_id]
