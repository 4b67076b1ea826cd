"""NotificationService servicer: request -> storage -> response, nothing more."""

from meshkit import pagination
from meshkit.protoconv import timestamp
from notifications import domain
from notifications.storage import NotificationStore
from shopmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc

_STATUS = {
    domain.NotificationStatus.PENDING: notifications_pb2.Notification.STATUS_PENDING,
    domain.NotificationStatus.SENT: notifications_pb2.Notification.STATUS_SENT,
    domain.NotificationStatus.FAILED: notifications_pb2.Notification.STATUS_FAILED,
}


def notification_to_proto(n: domain.Notification) -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        notification_id=n.notification_id,
        order_id=n.order_id,
        event_sequence=n.event_sequence,
        recipient=n.recipient,
        subject=n.subject,
        body=n.body,
        status=_STATUS[n.status],
        attempts=n.attempts,
        message_id=n.message_id,
        last_error=n.last_error,
        create_time=timestamp(n.create_time),
        update_time=timestamp(n.update_time),
        send_time=timestamp(n.send_time),
    )


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, store: NotificationStore) -> None:
        self._store = store

    async def ListNotifications(self, request, context):
        filters = {"order_id": request.order_id, "recipient": request.recipient}
        size = pagination.page_size(request.page_size)
        before = pagination.decode(request.page_token, filters, int)
        found = await self._store.page(request.order_id, request.recipient, before, size + 1)
        page, token = pagination.cut(found, size, filters, lambda last: int(last.notification_id))
        return notifications_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(n) for n in page], next_page_token=token
        )
