"""Notification rules in plain Python."""

import datetime as dt
import enum
from dataclasses import dataclass


class NotificationStatus(enum.Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Notification:
    notification_id: str
    order_id: str
    event_sequence: int
    recipient: str
    subject: str
    body: str
    status: NotificationStatus
    attempts: int
    message_id: str
    last_error: str
    create_time: dt.datetime
    update_time: dt.datetime
    send_time: dt.datetime | None
