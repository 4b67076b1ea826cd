"""A real SMTP server (aiosmtpd) on a thread of the calling process that keeps what it
accepts and when: the tests' and the benchmark's mail sink."""

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from devmesh.ports import free_port


@dataclass
class Received:
    message_id: str
    to: str
    subject: str
    body: str
    # wall-clock time of acceptance (time.time()), to compare with an order's create_time
    accepted_at: float
    # the client's (host, port): one per SMTP connection
    peer: tuple


@dataclass
class SmtpSink:
    port: int = field(default_factory=free_port)
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(
                Received(
                    parsed["Message-ID"],
                    parsed["To"],
                    parsed["Subject"],
                    parsed.get_content(),
                    time.time(),
                    tuple(session.peer),
                )
            )
        return "250 Message accepted for delivery"

    def start(self) -> "SmtpSink":
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def env(self) -> dict[str, str]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port)}

    def ids(self) -> list[str]:
        with self._lock:
            return [m.message_id for m in self.messages]

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Blocks until at least count messages arrived (or timeout); returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count:
            time.sleep(0.05)
        return self.received()

    async def arrived(self, count: int, timeout: float) -> list[Received]:
        """wait_for, for tests whose services run on the test's own event loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count:
            await asyncio.sleep(0.05)
        return self.received()
