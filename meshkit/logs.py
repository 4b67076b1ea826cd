"""One JSON object per line on stdout, configured once per process."""

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from meshkit import request_context


class _ContextFilter(logging.Filter):
    """Adds the service, the request id of the call being served, and the
    current trace and span ids (when tracing is on) to every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.request_id = request_context.request_id() or None
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else None
        record.span_id = format(span.span_id, "016x") if span.is_valid else None
        return True


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{service}{name}{message}{request_id}{trace_id}{span_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
