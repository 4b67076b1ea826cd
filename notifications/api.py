"""NotificationService servicer: request -> storage -> response, nothing more."""

import grpc

from meshkit import pagination
from meshkit.protoconv import enum_to_proto, timestamp
from notifications import domain
from notifications.storage import NotificationStore
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc

_STATUS_TO_PROTO = enum_to_proto(domain.NotificationStatus, notifications_pb2.Notification.Status)


def notification_to_proto(n: domain.Notification) -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        notification_id=n.notification_id,
        order_id=n.order_id,
        event_sequence=n.event_sequence,
        recipient=n.recipient,
        subject=n.subject,
        body=n.body,
        status=_STATUS_TO_PROTO[n.status],
        attempts=n.attempts,
        message_id=n.message_id,
        last_error=n.last_error,
        create_time=timestamp(n.create_time),
        update_time=timestamp(n.update_time),
        send_time=timestamp(n.send_time),
    )


async def _notifications_page(
    store: NotificationStore, request: notifications_pb2.ListNotificationsRequest
) -> notifications_pb2.ListNotificationsResponse:
    filters = {"order_id": request.order_id, "recipient": request.recipient}
    size = pagination.page_size(request.page_size)
    before = pagination.decode(request.page_token, filters, int)
    found = await store.page(request.order_id, request.recipient, before, size + 1)
    page, token = pagination.cut(found, size, filters, lambda last: int(last.notification_id))
    return notifications_pb2.ListNotificationsResponse(
        notifications=[notification_to_proto(n) for n in page], next_page_token=token
    )


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, store: NotificationStore) -> None:
        self._store = store

    async def ListNotifications(
        self,
        request: notifications_pb2.ListNotificationsRequest,
        context: grpc.aio.ServicerContext[
            notifications_pb2.ListNotificationsRequest, notifications_pb2.ListNotificationsResponse
        ],
    ) -> notifications_pb2.ListNotificationsResponse:
        return await _notifications_page(self._store, request)
