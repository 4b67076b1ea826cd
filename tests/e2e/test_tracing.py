"""One CreateOrder is one trace across Envoy and the services, with database spans
underneath, received by an OTLP collector running in the test."""

import json
import time

import pytest

from tests.helpers.databases import BACKENDS
from tests.helpers.http_calls import http_call
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh
from tests.helpers.otlp_collector import Collector


@pytest.fixture(scope="module")
def collector():
    running = Collector().start()
    yield running
    running.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def traced_mesh(request, tmp_path_factory, collector):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    yield from start_mesh(request, tmp_path_factory.mktemp(f"traced-{request.param}"), request.param, env)


def trace_of(collector, request_id_span_filter, services: set[str], timeout: float = 15):
    """Waits until the trace holding a span that matches the filter has spans of every
    service and is whole: each process exports in batches of its own, so a parent (the
    Order service's server span, which ends last) may arrive after its children."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collector.spans()
        roots = [s for s in spans if request_id_span_filter(s)]
        if roots:
            trace_id = roots[0].trace_id
            in_trace = [s for s in spans if s.trace_id == trace_id]
            ids = {s.span_id for s in in_trace}
            whole = len([s for s in in_trace if s.parent_span_id not in ids]) == 1
            if (services <= {s.service for s in in_trace} and whole) or time.monotonic() > deadline:
                return in_trace
        elif time.monotonic() > deadline:
            return []
        time.sleep(0.1)


def post(mesh, path: str, body: dict, request_id: str) -> int:
    url = f"http://{mesh.layout.public}{path}"
    return http_call(url, "POST", body, {"x-request-id": request_id}, token=mesh.token()).status


def create_product(mesh) -> str:
    product_id = unique("T")
    body = {
        "productId": product_id,
        "title": "traced",
        "price": {"currencyCode": "EUR", "units": "3"},
        "available": "10",
    }
    assert post(mesh, "/v1/products", body, unique("rid")) == 200
    return product_id


def test_one_order_is_one_trace_across_envoy_and_the_services(traced_mesh, collector):
    mesh = traced_mesh
    product_id = create_product(mesh)
    request_id = unique("rid")
    status = post(
        mesh,
        "/v1/orders",
        {"customerEmail": "trace@example.com", "items": [{"productId": product_id, "quantity": 1}]},
        request_id,
    )
    assert status == 200
    spans = trace_of(
        collector,
        lambda s: s.service == "envoy" and any(v.string_value == request_id for v in s.attributes.values()),
        {"envoy", "orders", "inventory"},
    )
    services = {s.service for s in spans}
    assert {"envoy", "orders", "inventory"} <= services, services
    by_id = {s.span_id: s for s in spans}
    # Every span but the edge's has its parent in the same trace: one tree.
    roots = [s for s in spans if s.parent_span_id not in by_id]
    assert len(roots) == 1 and roots[0].service == "envoy", [(s.service, s.name) for s in roots]

    def chain(span):
        while span is not None:
            yield span.service
            span = by_id.get(span.parent_span_id)

    reserve = next(s for s in spans if s.service == "inventory" and s.name.endswith("ReserveStock"))
    path = list(chain(reserve))
    # inventory <- Envoy (mesh) <- orders (client, server) <- Envoy (public)
    assert path[0] == "inventory" and path[-1] == "envoy" and "orders" in path and path.count("envoy") == 2, path
    assert any(s.service == "orders" and s.name.endswith("CreateOrder") for s in spans)
    database = [s for s in spans if "db.system" in s.attributes or "db.system.name" in s.attributes]
    assert {s.service for s in database} >= {"orders", "inventory"}
    # The order's email is sent in a span of its own, linked to the order's trace.
    trace_id = spans[0].trace_id
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sends = [
            s
            for s in collector.spans()
            if s.service == "notifications" and s.name == "send email" and trace_id in s.links
        ]
        if sends:
            break
        time.sleep(0.1)
    assert sends, "no email span linked to the order's trace"
    # Envoy's access log names the same trace for the request.
    deadline = time.monotonic() + 5
    logged = []
    while not logged and time.monotonic() < deadline:
        entries = [json.loads(line) for line in (mesh.run_dir / "envoy-access.log").read_text().splitlines()]
        logged = [e["trace_id"] for e in entries if e["request_id"] == request_id]
        time.sleep(0.1)
    assert logged and set(logged) == {spans[0].trace_id}


def test_a_failed_order_has_error_spans_and_its_logs_carry_the_trace_id(traced_mesh, collector):
    mesh = traced_mesh
    request_id = unique("rid")
    status = post(
        mesh,
        "/v1/orders",
        {"customerEmail": "trace@example.com", "items": [{"productId": "NO-SUCH", "quantity": 1}]},
        request_id,
    )
    assert status == 404
    spans = trace_of(
        collector,
        lambda s: s.service == "envoy" and any(v.string_value == request_id for v in s.attributes.values()),
        {"envoy", "orders", "inventory"},
    )
    # OpenTelemetry's gRPC conventions: a client span is an error for any code but OK; a
    # server span records the code (NOT_FOUND is the caller's mistake, not the server's).
    reserve_client = next(s for s in spans if s.service == "orders" and s.name.endswith("ReserveStock"))
    assert reserve_client.error
    servers = [
        s for s in spans if s.name.endswith(("CreateOrder", "ReserveStock")) and "rpc.grpc.status_code" in s.attributes
    ]
    assert {s.service for s in servers} == {"orders", "inventory"}
    assert {s.attributes["rpc.grpc.status_code"].int_value for s in servers} == {5}
    trace_id = spans[0].trace_id
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in mesh.log_path("orders").read_text().splitlines() if line.startswith("{")]
        mine = [e for e in lines if e.get("request_id") == request_id and e.get("message") == "rpc"]
        if mine:
            break
        time.sleep(0.1)
    assert mine and mine[0]["trace_id"] == trace_id and mine[0]["grpc_status"] == "NOT_FOUND"


def test_services_export_rpc_metrics(traced_mesh, collector):
    mesh = traced_mesh
    product_id = create_product(mesh)
    for _ in range(3):
        post(
            mesh,
            "/v1/orders",
            {"customerEmail": "metrics@example.com", "items": [{"productId": product_id, "quantity": 1}]},
            unique("rid"),
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        points = [p for p in collector.histogram_points() if p.metric == "rpc.server.duration"]
        created = [p for p in points if p.service == "orders" and p.attributes.get("rpc.method") == "CreateOrder"]
        reserved = [p for p in points if p.service == "inventory" and p.attributes.get("rpc.method") == "ReserveStock"]
        # cumulative histograms: the latest point counts every call so far
        if created and reserved and max(p.count for p in created) >= 3:
            break
        time.sleep(0.2)
    assert created and max(p.count for p in created) >= 3
    assert any(p.attributes["rpc.grpc.status"] == "OK" for p in reserved)
