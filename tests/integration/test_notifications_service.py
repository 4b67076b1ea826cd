"""The Notification service's API against a real SQLite database."""

import datetime as dt

import grpc
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from notifications.storage import NotificationRow
from shopmesh.notifications.v1 import notifications_pb2 as pb
from tests.helpers.databases import database_url
from tests.helpers.grpc_calls import all_pages


def seed(url: str, count: int) -> None:
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session, session.begin():
        for i in range(count):
            session.add(
                NotificationRow(
                    order_id=f"order-{i % 2}",
                    event_sequence=i + 1,
                    recipient=f"c{i % 3}@example.com",
                    subject=f"Order order-{i % 2}",
                    body="...",
                    status="SENT",
                    attempts=1,
                    message_id=f"<event-{i + 1}@shopmesh>",
                    last_error="",
                    create_time=now,
                    update_time=now,
                    send_time=now,
                )
            )
    engine.dispose()


async def test_empty_until_events_arrive(notifications):
    response = await notifications.stub.ListNotifications(pb.ListNotificationsRequest())
    assert list(response.notifications) == [] and response.next_page_token == ""


async def test_filters_and_pages(notifications, service_env):
    seed(database_url(service_env, "notifications"), 12)
    listed = await all_pages(
        notifications.stub.ListNotifications,
        lambda token: pb.ListNotificationsRequest(order_id="order-0", page_size=2, page_token=token),
        "notifications",
    )
    seen = [n.event_sequence for n in listed]
    assert seen == [11, 9, 7, 5, 3, 1]
    by_recipient = await notifications.stub.ListNotifications(pb.ListNotificationsRequest(recipient="c1@example.com"))
    assert [n.event_sequence for n in by_recipient.notifications] == [11, 8, 5, 2]
    assert by_recipient.notifications[0].status == pb.Notification.STATUS_SENT


async def test_bad_page_token_is_invalid_argument(notifications):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await notifications.stub.ListNotifications(pb.ListNotificationsRequest(page_token="bogus"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
