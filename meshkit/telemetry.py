"""OpenTelemetry tracing, chosen by OpenTelemetry's standard variables.

With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, every served and
every outgoing gRPC call gets a span (OpenTelemetry's grpc.aio instrumentation),
every database statement too (its SQLAlchemy instrumentation), exported over
OTLP/gRPC. Unset, or OTEL_SDK_DISABLED=true / OTEL_TRACES_EXPORTER=none: nothing
is instrumented and nothing is exported, so nothing can fail to connect.
"""

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.engine import Engine


def wanted(env: Mapping[str, str]) -> bool:
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    disabled = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER") == "none"
    return bool(endpoint) and not disabled


def configure(service: str, env: Mapping[str, str]) -> TracerProvider | None:
    """Installs the tracer provider and the gRPC instrumentation, before any
    server or channel exists. Returns the provider to shut down, or None."""
    if not wanted(env):
        return None
    # OTEL_SERVICE_NAME, when set, wins over the service's own name.
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    return provider


def instrument_engine(engine: Engine) -> None:
    """Database spans, when tracing is on (a service process has one engine)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1, and works with 2.1.
        SQLAlchemyInstrumentor().instrument(
            engine=engine, tracer_provider=trace.get_tracer_provider(), skip_dep_check=True
        )
