"""Where emails go: an SMTP server (aiosmtplib), or, with no SMTP configured, a
local Maildir that any mail reader opens."""

import asyncio
import mailbox
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib

from notifications import domain

SMTP_TIMEOUT_SECONDS = 30


def build_message(notification: domain.Notification, sender: str) -> EmailMessage:
    """The email of a notification. Its Message-ID is the notification's, so a
    resend carries the same one. Raises ValueError for a header that cannot be
    written safely (the address is then refused for good, not retried)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notification.recipient
    message["Subject"] = notification.subject
    message["Message-ID"] = notification.message_id
    message["Date"] = format_datetime(notification.create_time)
    message.set_content(notification.body)
    return message


class SmtpMailer:
    """Sends over one connection kept open between emails: a new SMTP session per
    email would cost a TCP handshake and four more round trips each time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._client: aiosmtplib.SMTP | None = None

    async def send(self, message: EmailMessage) -> None:
        """Returns once the server accepted the message; raises if it did not."""
        client = self._client
        reused = client is not None and client.is_connected
        if client is None or not reused:
            client = await self._connect()
        try:
            await client.send_message(message)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
            self._client = None
            if not reused:
                raise
            # The server closed the kept connection while it was idle: once more
            # on a new one (a resend, if any, keeps its Message-ID).
            client = await self._connect()
            await client.send_message(message)

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new connection, kept for the emails that follow."""
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=SMTP_TIMEOUT_SECONDS)
        await client.connect()
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()

    def __str__(self) -> str:
        return f"SMTP {self.host}:{self.port}"


class MaildirMailer:
    """Adds each email to a Maildir, as a local mail server would deliver it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box = mailbox.Maildir(path, create=True)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._box.add, message)

    async def close(self) -> None:
        pass

    def __str__(self) -> str:
        return f"Maildir {self.path}"
