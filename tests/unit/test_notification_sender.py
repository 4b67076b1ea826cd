"""The email Sender with in-memory fakes of its ports (notifications.ports): no network,
no database, no mail server.

The fake store keeps NotificationStore's rules that the sender relies on: due() gives
PENDING notifications whose next attempt has come, oldest first; mark_sent changes only a
PENDING notification and counts the attempt; mark_failed_attempt counts one and schedules
the next after the retry policy's delay, or gives up (FAILED)."""

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage

import aiosmtplib
import pytest
from sqlalchemy.exc import OperationalError

from meshkit.database import utcnow
from notifications import domain
from notifications.domain import NotificationStatus
from notifications.sender import Sender

FROM = "ShopMesh <orders@shopmesh.example>"
# failed attempts are due again at once, so each pass tries again
AT_ONCE = domain.RetryPolicy(max_attempts=3, first_delay=0.0, max_delay=0.0)


def database_away() -> OperationalError:
    """What SQLAlchemy raises while the database is away (meshkit.database.is_outage)."""
    return OperationalError("UPDATE notifications ...", {}, Exception("database is locked"))


class FakeNotifications:
    """The notifications table in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, domain.Notification] = {}
        self.next_attempt: dict[str, dt.datetime | None] = {}
        self.mark_sent_calls: list[str] = []
        self.marked_sent: list[str] = []  # every mark_sent that changed a notification
        self.away_for_mark_sent = 0  # how many mark_sent calls meet the database away

    def add(self, recipient: str = "ann@example.com") -> domain.Notification:
        number = len(self.rows) + 1
        order_id = f"order-{number}"
        now = utcnow()
        notification = domain.Notification(
            notification_id=str(number),
            order_id=order_id,
            event_sequence=number,
            recipient=recipient,
            subject=f"Order {number} received",
            body="Hello,\n",
            status=NotificationStatus.PENDING,
            attempts=0,
            message_id=domain.message_id(order_id, number),
            last_error="",
            create_time=now,
            update_time=now,
            send_time=None,
        )
        self.rows[notification.notification_id] = notification
        self.next_attempt[notification.notification_id] = now
        return notification

    async def due(self, now: dt.datetime, limit: int) -> list[domain.Notification]:
        due = [
            (when, int(notification_id))
            for notification_id, when in self.next_attempt.items()
            if when is not None and when <= now
        ]
        return [self.rows[str(notification_id)] for _, notification_id in sorted(due)[:limit]]

    async def next_attempt_time(self) -> dt.datetime | None:
        return min((when for when in self.next_attempt.values() if when is not None), default=None)

    async def mark_sent(self, notification_id: str, now: dt.datetime) -> None:
        self.mark_sent_calls.append(notification_id)
        if self.away_for_mark_sent:
            self.away_for_mark_sent -= 1
            raise database_away()
        row = self.rows[notification_id]
        if row.status is not NotificationStatus.PENDING:
            return
        self.rows[notification_id] = dataclasses.replace(
            row,
            status=NotificationStatus.SENT,
            attempts=row.attempts + 1,
            send_time=now,
            update_time=now,
            last_error="",
        )
        self.next_attempt[notification_id] = None
        self.marked_sent.append(notification_id)

    async def mark_failed_attempt(
        self, notification_id: str, error: str, now: dt.datetime, policy: domain.RetryPolicy
    ) -> NotificationStatus:
        row = self.rows[notification_id]
        attempts = row.attempts + 1
        delay = policy.delay_after(attempts)
        status = NotificationStatus.FAILED if delay is None else NotificationStatus.PENDING
        self.rows[notification_id] = dataclasses.replace(
            row, attempts=attempts, last_error=error, update_time=now, status=status
        )
        self.next_attempt[notification_id] = None if delay is None else now + dt.timedelta(seconds=delay)
        return status


class FakeMailServer:
    """A mailer that accepts every email, but for the failures it is told to raise first
    (as SmtpMailer raises aiosmtplib's and the socket's errors)."""

    def __init__(self) -> None:
        self.tried: list[str] = []  # the Message-ID of every email handed over
        self.accepted: list[EmailMessage] = []
        self.accept_times: list[dt.datetime] = []
        self.failures: list[Exception] = []

    async def send(self, message: EmailMessage) -> None:
        self.tried.append(message["Message-ID"])
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append(message)
        self.accept_times.append(utcnow())

    def message_ids(self) -> list[str]:
        return [message["Message-ID"] for message in self.accepted]


def sender(
    store: FakeNotifications, mailer: FakeMailServer, policy: domain.RetryPolicy = AT_ONCE, pause: float = 0.0
) -> Sender:
    return Sender(store, mailer, FROM, policy, pause=pause)


@contextlib.asynccontextmanager
async def running(background: Sender) -> AsyncIterator[Sender]:
    """background's run() as the service runs it, stopped at the end."""
    task = asyncio.create_task(background.run())
    try:
        yield background
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_sent_email_is_marked_sent_once() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    notification = store.add()
    one = sender(store, mailer)
    assert await one.send_due() == 1
    assert await one.send_due() == 0
    [message] = mailer.accepted
    assert (message["From"], message["To"], message["Subject"], message["Message-ID"]) == (
        FROM,
        "ann@example.com",
        "Order 1 received",
        "<order-1.1@shopmesh>",
    )
    assert message.get_content() == "Hello,\n"
    sent = store.rows[notification.notification_id]
    assert (sent.status, sent.attempts, sent.last_error) == (NotificationStatus.SENT, 1, "")
    assert sent.send_time is not None and sent.send_time >= mailer.accept_times[0]
    assert store.mark_sent_calls == store.marked_sent == ["1"]


async def test_nothing_is_sent_twice_in_the_normal_path() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    for recipient in ("ann@example.com", "bob@example.com", "cy@example.com"):
        store.add(recipient)
    one = sender(store, mailer)
    assert await one.send_due() == 3
    assert await one.send_due() == 0
    assert mailer.tried == ["<order-1.1@shopmesh>", "<order-2.2@shopmesh>", "<order-3.3@shopmesh>"]
    assert store.marked_sent == ["1", "2", "3"]
    assert {row.attempts for row in store.rows.values()} == {1}


async def test_a_running_sender_sends_what_it_is_woken_for_once() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    async with running(sender(store, mailer)) as background:
        for _ in range(3):
            store.add()
            background.wake()
            await until(lambda: len(store.marked_sent) == len(store.rows))
        await asyncio.sleep(0.05)  # a sender that sent again would have done so by now
    assert mailer.tried == ["<order-1.1@shopmesh>", "<order-2.2@shopmesh>", "<order-3.3@shopmesh>"]
    assert store.marked_sent == ["1", "2", "3"]


async def test_a_failed_send_is_retried_with_the_same_message_id_and_counted() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    mailer.failures = [
        aiosmtplib.SMTPResponseException(451, "4.3.0 try again later"),
        ConnectionRefusedError(111, "Connection refused"),
    ]
    one = sender(store, mailer)
    expected = [
        (NotificationStatus.PENDING, 1, "SMTPResponseException: (451, '4.3.0 try again later')"),
        (NotificationStatus.PENDING, 2, "ConnectionRefusedError: [Errno 111] Connection refused"),
        (NotificationStatus.SENT, 3, ""),
    ]
    for status, attempts, last_error in expected:
        assert await one.send_due() == 1
        row = store.rows["1"]
        assert (row.status, row.attempts, row.last_error) == (status, attempts, last_error)
    assert mailer.tried == ["<order-1.1@shopmesh>"] * 3
    assert mailer.message_ids() == ["<order-1.1@shopmesh>"]
    assert store.marked_sent == ["1"]


async def test_a_failed_send_waits_for_the_back_off() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    mailer.failures = [aiosmtplib.SMTPServerDisconnected("Connection lost")]
    one = sender(store, mailer, domain.RetryPolicy(max_attempts=3, first_delay=60.0))
    assert await one.send_due() == 1
    failed_at = store.rows["1"].update_time
    assert await one.send_due() == 0
    assert mailer.tried == ["<order-1.1@shopmesh>"]
    assert await store.next_attempt_time() == failed_at + dt.timedelta(seconds=60)


async def test_a_send_failing_every_attempt_is_failed_and_never_tried_again() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    mailer.failures = [aiosmtplib.SMTPResponseException(451, "4.3.0 try again later") for _ in range(4)]
    one = sender(store, mailer)
    for _ in range(AT_ONCE.max_attempts):
        assert await one.send_due() == 1
    assert await one.send_due() == 0
    row = store.rows["1"]
    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 3)
    assert await store.next_attempt_time() is None
    assert mailer.tried == ["<order-1.1@shopmesh>"] * 3
    assert mailer.accepted == []


async def test_an_email_that_cannot_be_written_safely_is_failed_at_once_and_never_sent() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add(recipient="ann@example.com\r\nBcc: eve@example.com")
    store.add()
    assert await sender(store, mailer).send_due() == 2
    row = store.rows["1"]
    assert (row.status, row.attempts, row.last_error) == (
        NotificationStatus.FAILED,
        1,
        "cannot build the email: Header values may not contain linefeed or carriage return characters",
    )
    # the next one is not held up by it
    assert mailer.tried == ["<order-2.2@shopmesh>"]


async def test_a_database_outage_between_send_and_mark_sends_nothing_twice() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    store.add()
    store.away_for_mark_sent = 1
    one = sender(store, mailer)
    with pytest.raises(OperationalError):
        await one.send_due()
    assert mailer.tried == ["<order-1.1@shopmesh>"]
    assert store.rows["1"].status is NotificationStatus.PENDING
    resumed_at = utcnow()
    # the next pass (run() makes it once the outage is over) records first what was accepted
    assert await one.send_due() == 1
    assert mailer.tried == ["<order-1.1@shopmesh>", "<order-2.2@shopmesh>"]
    assert store.marked_sent == ["1", "2"]
    assert store.mark_sent_calls == ["1", "1", "2"]  # the first met the outage
    first = store.rows["1"]
    assert first.attempts == 1
    # SENT as of the mail server's acceptance, not of the recording
    assert first.send_time is not None and mailer.accept_times[0] <= first.send_time < resumed_at


async def test_a_running_sender_outlives_a_database_outage_between_send_and_mark() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    store.away_for_mark_sent = 2
    async with running(sender(store, mailer)):
        await until(lambda: store.marked_sent == ["1"])
    assert mailer.tried == ["<order-1.1@shopmesh>"]


async def test_a_crash_between_send_and_mark_resends_once_with_the_same_message_id() -> None:
    store, mailer = FakeNotifications(), FakeMailServer()
    store.add()
    store.away_for_mark_sent = 1
    with pytest.raises(OperationalError):
        await sender(store, mailer).send_due()
    # the process dies: what it kept in memory is lost, a new one starts from the database
    restarted = sender(store, mailer)
    assert await restarted.send_due() == 1
    assert await restarted.send_due() == 0
    assert mailer.message_ids() == ["<order-1.1@shopmesh>", "<order-1.1@shopmesh>"]
    row = store.rows["1"]
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 1)
    assert store.marked_sent == ["1"]
