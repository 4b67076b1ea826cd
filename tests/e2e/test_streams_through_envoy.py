"""Following an order live through Envoy: gRPC server streaming and REST
Server-Sent Events; the internal event stream on the mesh listener."""

import http.client
import json
import threading

from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc

Status = pb.OrderStatus


def place(public, new_product) -> pb.Order:
    return public.orders.CreateOrder(
        pb.CreateOrderRequest(
            customer_email="watch@example.com", items=[pb.OrderItemRequest(product_id=new_product(5), quantity=1)]
        ),
        timeout=10,
    )


def advance_when(ready: threading.Event, public, order_id: str) -> threading.Thread:
    """Confirms, then ships the order once the watcher has its first message."""

    def run() -> None:
        ready.wait(10)
        public.orders.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order_id), timeout=10)
        public.orders.ShipOrder(pb.ShipOrderRequest(order_id=order_id), timeout=10)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_watch_with_the_generated_stub(public, new_product):
    order = place(public, new_product)
    ready, statuses = threading.Event(), []
    mover = advance_when(ready, public, order.order_id)
    for message in public.orders.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), timeout=30):
        statuses.append(message.status)
        ready.set()
    mover.join()
    assert statuses == [Status.ORDER_STATUS_PENDING, Status.ORDER_STATUS_CONFIRMED, Status.ORDER_STATUS_SHIPPED]


def test_watch_over_rest_is_server_sent_events(mesh, public, new_product, operator_token):
    order = place(public, new_product)
    host, port = mesh.layout.public.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(
        "GET",
        f"/v1/orders/{order.order_id}:watch",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {operator_token}"},
    )
    reply = connection.getresponse()
    assert reply.status == 200
    assert reply.getheader("content-type").startswith("text/event-stream")
    ready, statuses = threading.Event(), []
    mover = advance_when(ready, public, order.order_id)
    for raw in reply:  # ends when the stream does
        line = raw.decode().strip()
        if line.startswith("data:"):
            statuses.append(json.loads(line.removeprefix("data:"))["status"])
            ready.set()
    mover.join()
    connection.close()
    assert statuses == ["ORDER_STATUS_PENDING", "ORDER_STATUS_CONFIRMED", "ORDER_STATUS_SHIPPED"]


def test_watching_an_unknown_order_over_rest_is_404(rest):
    reply = rest("GET", "/v1/orders/no-such-order:watch")
    assert reply.status == 404
    assert reply.body["code"] == 5


def test_event_stream_on_the_mesh_listener(mesh, public, new_product):
    order = place(public, new_product)
    # as the Notification service, which follows the stream
    with mesh.layout.channel(mesh.layout.mesh, "envoy", caller="notifications") as channel:
        stream = orders_pb2_grpc.OrderServiceStub(channel).StreamOrderEvents(pb.StreamOrderEventsRequest(), timeout=30)
        for event in stream:
            if event.order.order_id == order.order_id:
                assert event.type == pb.OrderEvent.TYPE_CREATED
                stream.cancel()
                break
