"""Every service logs one JSON object per line; each call ends with one line naming
its method, gRPC status and duration, and carrying the request id Envoy gave it."""

import json
import time

from tests.helpers.ids import unique


def log_lines(mesh, service: str) -> list[dict]:
    return [json.loads(line) for line in mesh.log_path(service).read_text().splitlines() if line.startswith("{")]


def rpc_lines(mesh, service: str, request_id: str) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in log_lines(mesh, service) if e.get("message") == "rpc" and e.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_one_line_per_call_with_the_request_id_across_services(mesh, rest, new_product):
    request_id = unique("rid")
    reply = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "log@example.com", "items": [{"productId": new_product(1), "quantity": 1}]},
        headers={"x-request-id": request_id},
    )
    assert reply.status == 200
    [placed] = rpc_lines(mesh, "orders", request_id)
    assert placed["method"] == "/shopmesh.orders.v1.OrderService/CreateOrder"
    assert placed["grpc_status"] == "OK" and placed["duration_ms"] > 0
    assert {"timestamp", "level", "service", "logger", "trace_id", "span_id"} <= set(placed)
    [reserved] = rpc_lines(mesh, "inventory", request_id)
    assert reserved["method"] == "/shopmesh.inventory.v1.InventoryService/ReserveStock"
    assert reserved["service"] == "inventory"


def test_a_failed_call_logs_its_status_and_no_customer_data(mesh, rest):
    request_id = unique("rid")
    reply = rest("GET", "/v1/orders/no-such-order", headers={"x-request-id": request_id})
    assert reply.status == 404
    [line] = rpc_lines(mesh, "orders", request_id)
    assert line["grpc_status"] == "NOT_FOUND"
    bodies = [e for e in log_lines(mesh, "notifications") if "body" in e]
    assert bodies == []  # email bodies never reach the logs


def test_routine_health_checks_stay_out_of_the_info_log(mesh):
    # Envoy has checked every service once a second since the mesh started (and
    # the launcher before it); give it a few more
    time.sleep(2.5)
    for service in ("orders", "inventory", "notifications"):
        checks = [e for e in log_lines(mesh, service) if e.get("method", "").startswith("/grpc.health.v1.Health/")]
        assert checks == [], f"{service} logged {len(checks)} health checks"
