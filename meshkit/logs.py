"""One JSON object per line on stdout, configured once per process."""

import asyncio
import logging
import sys
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.orjson import OrjsonFormatter

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


class _PassHandler(logging.StreamHandler):
    """A StreamHandler that, on an event loop's thread, writes the lines of one pass of the
    loop together when the pass ends, rather than each line at once: under load a pass ends
    many calls, and a write per line cost as much as the rest of logging it. From any other
    thread, or with no loop running (at exit), a line is written at once."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._scheduled = False

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_pass)

    def _flush_pass(self) -> None:
        self._scheduled = False
        super().flush()


def configure(service: str, level: str = "INFO") -> None:
    handler = _PassHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        OrjsonFormatter(
            "{levelname}{service}{name}{message}{request_id}{trace_id}{span_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
