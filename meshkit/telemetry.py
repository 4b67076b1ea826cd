"""OpenTelemetry tracing and metrics, chosen by OpenTelemetry's standard variables.

With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, every served and
every outgoing gRPC call gets a span (OpenTelemetry's grpc.aio instrumentation),
every database statement too (its SQLAlchemy instrumentation), exported over
OTLP/gRPC. Unset, or OTEL_SDK_DISABLED=true / OTEL_TRACES_EXPORTER=none: nothing
is instrumented and nothing is exported, so nothing can fail to connect.
"""

from collections.abc import Mapping

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Engine


def wanted(env: Mapping[str, str], signal: str = "TRACES") -> bool:
    """Whether a signal (TRACES, METRICS) is to be exported, by OpenTelemetry's variables."""
    endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    disabled = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get(f"OTEL_{signal}_EXPORTER") == "none"
    return bool(endpoint) and not disabled


def configure(service: str, env: Mapping[str, str]) -> list[TracerProvider | MeterProvider]:
    """Installs the tracer and meter providers (and the gRPC instrumentation)
    that the variables ask for, before any server or channel exists. Returns the
    providers, to shut down at exit."""
    # OTEL_SERVICE_NAME, when set, wins over the service's own name.
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {"service.name": service})
    providers: list[TracerProvider | MeterProvider] = []
    if wanted(env, "TRACES"):
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
        # opentelemetry-instrumentation-grpc leaves its instrumentors' __init__ unannotated
        GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]  # its __init__ is unannotated
        GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]  # its __init__ is unannotated
        providers.append(tracer_provider)
    if wanted(env, "METRICS"):
        # Exported every OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default).
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
        )
        metrics.set_meter_provider(meter_provider)
        providers.append(meter_provider)
    return providers


def instrument_engines(*engines: Engine) -> None:
    """Database spans for every statement of engines, when tracing is on. Called once per
    process (OpenTelemetry's instrumentor instruments once: a second call does nothing)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1, and works with 2.1.
        SQLAlchemyInstrumentor().instrument(
            engines=list(engines), tracer_provider=trace.get_tracer_provider(), skip_dep_check=True
        )


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None when nothing is traced."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def link_to(traceparent: str | None) -> list[Link]:
    """A span link to the trace a traceparent names (none for an empty one)."""
    if not traceparent:
        return []
    context = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return [Link(span_context)] if span_context.is_valid else []
