"""The SMTP mailer against a real SMTP server (aiosmtpd): one kept connection for
many emails, and a new one when the server has dropped it."""

from email.message import EmailMessage

import aiosmtplib
import pytest

from devmesh.smtp_sink import SmtpSink
from notifications.mailer import SmtpMailer


def email(number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = f"c{number}@example.com"
    message["Subject"] = f"Order {number}"
    message["Message-ID"] = f"<{number}@shopmesh.example>"
    message.set_content("body")
    return message


async def test_emails_share_one_connection():
    sink = SmtpSink().start()
    mailer = SmtpMailer("127.0.0.1", sink.port)
    try:
        for number in range(5):
            await mailer.send(email(number))
        received = await sink.arrived(5, 5)
        assert [m.to for m in received] == [f"c{n}@example.com" for n in range(5)]
        assert len({m.peer for m in received}) == 1
    finally:
        await mailer.close()
        sink.stop()


async def test_a_dropped_connection_is_replaced():
    sink = SmtpSink().start()
    mailer = SmtpMailer("127.0.0.1", sink.port)
    try:
        await mailer.send(email(1))
        # the server goes away and comes back: the kept connection is dead
        sink.stop()
        sink.start()
        await mailer.send(email(2))
        received = await sink.arrived(2, 5)
        assert [m.message_id for m in received] == ["<1@shopmesh.example>", "<2@shopmesh.example>"]
        assert len({m.peer for m in received}) == 2
    finally:
        await mailer.close()
        sink.stop()


async def test_an_unreachable_server_fails_the_send():
    mailer = SmtpMailer("127.0.0.1", SmtpSink().port)  # never started: nothing listens there
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await mailer.send(email(1))
    await mailer.close()
