"""How a service logs: one line per record on stdout, configured once per process.

JSON, one object per line, wherever a program reads the lines (containers, files, log
shippers, tests); a short readable line where a person reads them at a terminal.
SHOPMESH_LOG_FORMAT (json or text) overrides that choice.
"""

import asyncio
import enum
import logging
import sys
from collections.abc import Mapping
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.orjson import OrjsonFormatter

from meshkit import config, request_context

FORMAT_VARIABLE = "SHOPMESH_LOG_FORMAT"


class LogFormat(enum.StrEnum):
    """How a record is written, named as SHOPMESH_LOG_FORMAT names it."""

    JSON = "json"
    TEXT = "text"


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


class _PassHandler(logging.StreamHandler[TextIO]):
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


def _json_formatter() -> logging.Formatter:
    """timestamp (UTC, ISO 8601), level, service, logger, message, request_id, trace_id,
    span_id, then the record's extra fields (an rpc record's method, grpc_status, duration_ms)."""
    return OrjsonFormatter(
        "{levelname}{service}{name}{message}{request_id}{trace_id}{span_id}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


# what every record has, and what _ContextFilter adds: anything else came as `extra`
_NOT_EXTRA = frozenset(logging.LogRecord("", 0, "", 0, None, None, None).__dict__) | {
    "message",
    "asctime",
    "service",
    "request_id",
    "trace_id",
    "span_id",
}
# the extra fields of the one record meshkit.status logs per served call
_RPC_FIELDS = ("method", "grpc_status", "duration_ms")
_SERVICE_WIDTH = len("notifications")
# ANSI colours (SGR parameters) of the levels worth a glance; INFO stays plain
_LEVEL_COLOURS = {logging.DEBUG: "2", logging.WARNING: "33", logging.ERROR: "31", logging.CRITICAL: "1;31"}


def _duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"  # a long stream
    return f"{ms:.2f}".rstrip("0").rstrip(".") + " ms"


def _field(name: str, value: object) -> str:
    text = str(value)
    return f"{name}={text!r}" if not text or any(c.isspace() for c in text) else f"{name}={text}"


class ReadableFormatter(logging.Formatter):
    """One short line per record for a person at a terminal:

        12:03:04.512 orders        INFO  rpc GetOrder OK 1.2 ms req=5f1c...

    local time to the millisecond, service, level, message; for an rpc record the method's
    name, gRPC status and duration; other extra fields as name=value; the request id in
    full (to grep Envoy's access log with). A record's traceback follows its line.
    colour: the level in ANSI colours (debug dim, warnings yellow, errors red).
    """

    default_time_format = "%H:%M:%S"
    default_msec_format = "%s.%03d"

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self._colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        level = f"{record.levelname:<5}"
        colour = _LEVEL_COLOURS.get(record.levelno) if self._colour else None
        if colour:
            level = f"\x1b[{colour}m{level}\x1b[0m"
        parts = [self.formatTime(record), f"{fields.get('service') or '-':<{_SERVICE_WIDTH}}", level, record.message]
        shown: tuple[str, ...] = ()
        if all(name in fields for name in _RPC_FIELDS):
            shown = _RPC_FIELDS
            parts += [str(fields["method"]).rpartition("/")[2], str(fields["grpc_status"])]
            parts.append(_duration(fields["duration_ms"]))
        parts += [
            _field(name, value)
            for name, value in fields.items()
            if name not in _NOT_EXTRA and name not in shown and value is not None
        ]
        if fields.get("request_id"):
            parts.append(f"req={fields['request_id']}")
        return " ".join(parts)


def chosen_format(env: Mapping[str, str], stream: TextIO) -> LogFormat:
    """SHOPMESH_LOG_FORMAT when set; otherwise text when stream is a terminal, JSON when it
    is anything else. Raises config.ConfigError for any other value."""
    setting = config.choice(env, FORMAT_VARIABLE, [choice.value for choice in LogFormat])
    if setting is not None:
        return LogFormat(setting)
    return LogFormat.TEXT if stream.isatty() else LogFormat.JSON


def colour(env: Mapping[str, str], stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return not env.get("NO_COLOR") and stream.isatty()


def handler(service: str, env: Mapping[str, str], stream: TextIO) -> logging.Handler:
    """A handler writing service's records to stream in the format chosen_format picks.
    Raises config.ConfigError for a bad SHOPMESH_LOG_FORMAT."""
    log_format = chosen_format(env, stream)
    written = _PassHandler(stream)
    written.addFilter(_ContextFilter(service))
    if log_format is LogFormat.JSON:
        written.setFormatter(_json_formatter())
    else:
        written.setFormatter(ReadableFormatter(colour=colour(env, stream)))
    return written


def configure(service: str, env: Mapping[str, str], level: str = "INFO") -> None:
    """Sends every record of this process to stdout (see handler). Raises
    config.ConfigError, before changing anything, for a bad SHOPMESH_LOG_FORMAT."""
    root = logging.getLogger()
    root.handlers[:] = [handler(service, env, sys.stdout)]
    root.setLevel(level)
