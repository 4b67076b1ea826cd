"""A small OTLP/gRPC collector in the test process, built on the generated classes
of the opentelemetry-proto package: it keeps every span and histogram point it receives."""

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    error: bool
    attributes: dict[str, common_pb2.AnyValue]
    links: tuple[str, ...]


@dataclass(frozen=True)
class HistogramPoint:
    service: str
    metric: str
    attributes: dict[str, str]
    count: int


def _service_of(resource: resource_pb2.Resource) -> str:
    return next((a.value.string_value for a in resource.attributes if a.key == "service.name"), "")


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, collector: "Collector") -> None:
        self._collector = collector

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        points = [
            HistogramPoint(
                _service_of(resource_metrics.resource),
                metric.name,
                {a.key: a.value.string_value for a in point.attributes},
                point.count,
            )
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            for point in metric.histogram.data_points
        ]
        with self._collector._lock:
            self._collector._points += points
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Receives spans (and, through _Metrics, histogram points) on a loopback port until stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._points: list[HistogramPoint] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            service = _service_of(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            error=span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                            attributes={a.key: a.value for a in span.attributes},
                            links=tuple(link.trace_id.hex() for link in span.links),
                        )
                    )
        with self._lock:
            self._spans += received
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def histogram_points(self) -> list[HistogramPoint]:
        with self._lock:
            return list(self._points)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Collector":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(0)
