"""Accepts every email on port 1025 and prints it as one JSON line on stdout."""

import asyncio
import email
import email.policy
import json

from aiosmtpd.controller import Controller


class Printer:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(
            json.dumps({"message_id": message["Message-ID"], "to": message["To"], "subject": message["Subject"]}),
            flush=True,
        )
        return "250 Message accepted for delivery"


async def main() -> None:
    controller = Controller(Printer(), hostname="0.0.0.0", port=1025)
    controller.start()
    print(json.dumps({"listening": 1025}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
