"""The log line's format: readable on a terminal, JSON everywhere else, SHOPMESH_LOG_FORMAT
to choose; what each form holds for an rpc record and for an exception."""

import contextvars
import io
import json
import logging
import time

import pytest

from meshkit import config, logs, request_context

RPC_FIELDS = {"method": "/shopmesh.orders.v1.OrderService/GetOrder", "grpc_status": "OK", "duration_ms": 1.23}
# 2023-11-14 22:13:20.512 UTC
CREATED = 1_700_000_000.512
REQUEST_ID = "5f1c2d3e-0a1b-4c5d-8e9f-001122334455"


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stdout does under `make up`."""

    def isatty(self) -> bool:
        return True


class _Call:
    """The part of a served call's context request_context.bind reads."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((request_context.REQUEST_ID_HEADER, REQUEST_ID),)


def record(message: str = "rpc", level: int = logging.INFO, /, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "meshkit.status",
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            "created": CREATED,
            "msecs": 512.0,
            **extra,
        }
    )


def written(stream: io.StringIO, env: dict[str, str], entry: logging.LogRecord) -> str:
    """What the handler logs.handler builds writes for entry, emitted during a served call
    that carries REQUEST_ID."""

    def emit() -> None:
        request_context.bind(_Call(), from_envoy=False)  # type: ignore[arg-type]
        logs.handler("orders", env, stream).handle(entry)

    contextvars.copy_context().run(emit)
    return stream.getvalue()


def local_time() -> str:
    return time.strftime("%H:%M:%S", time.localtime(CREATED)) + ".512"


@pytest.mark.parametrize(
    ("stream", "setting", "chosen"),
    [
        (Terminal(), None, logs.LogFormat.TEXT),
        (io.StringIO(), None, logs.LogFormat.JSON),
        (Terminal(), "", logs.LogFormat.TEXT),
        (Terminal(), "json", logs.LogFormat.JSON),
        (io.StringIO(), "json", logs.LogFormat.JSON),
        (Terminal(), "text", logs.LogFormat.TEXT),
        (io.StringIO(), "text", logs.LogFormat.TEXT),
    ],
)
def test_text_on_a_terminal_json_elsewhere_unless_the_setting_says(
    stream: io.StringIO, setting: str | None, chosen: logs.LogFormat
) -> None:
    env = {} if setting is None else {"SHOPMESH_LOG_FORMAT": setting}
    assert logs.chosen_format(env, stream) is chosen


@pytest.mark.parametrize("setting", ["xml", "JSON", "auto"])
def test_any_other_setting_is_a_configuration_error(setting: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        logs.chosen_format({"SHOPMESH_LOG_FORMAT": setting}, Terminal())
    assert str(raised.value) == f"SHOPMESH_LOG_FORMAT={setting!r} must be one of: json, text"


def test_a_bad_setting_leaves_the_logging_as_it_was() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    with pytest.raises(config.ConfigError):
        logs.configure("orders", {"SHOPMESH_LOG_FORMAT": "xml"})
    assert root.handlers == before


@pytest.mark.parametrize(
    ("stream", "env", "coloured"),
    [
        (Terminal(), {}, True),
        (Terminal(), {"NO_COLOR": "1"}, False),
        (Terminal(), {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        (io.StringIO(), {"SHOPMESH_LOG_FORMAT": "text"}, False),
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    stream: io.StringIO, env: dict[str, str], coloured: bool
) -> None:
    assert logs.colour(env, stream) is coloured


def test_an_rpc_record_reads_as_one_short_line_with_its_request_id() -> None:
    line = written(Terminal(), {"NO_COLOR": "1"}, record(**RPC_FIELDS))
    assert line == f"{local_time()} orders        INFO  rpc GetOrder OK 1.23 ms req={REQUEST_ID}\n"


def test_other_extra_fields_follow_the_message_as_name_value() -> None:
    entry = record("interrupted; going on", logging.WARNING, reason="database is locked", pause_seconds=1.0)
    line = written(io.StringIO(), {"SHOPMESH_LOG_FORMAT": "text"}, entry)
    assert line == (
        f"{local_time()} orders        WARNING interrupted; going on reason='database is locked' pause_seconds=1.0"
        f" req={REQUEST_ID}\n"
    )


def test_a_long_call_reads_in_seconds_and_a_failed_one_names_its_status() -> None:
    entry = record(method="/shopmesh.orders.v1.OrderService/WatchOrder", grpc_status="CANCELLED", duration_ms=95_310.4)
    line = written(io.StringIO(), {"SHOPMESH_LOG_FORMAT": "text"}, entry)
    assert line == f"{local_time()} orders        INFO  rpc WatchOrder CANCELLED 95.3 s req={REQUEST_ID}\n"


def test_the_level_is_coloured_on_a_terminal() -> None:
    line = written(Terminal(), {}, record("background task did not stop", logging.ERROR, task="follow"))
    red_error = "\x1b[31mERROR\x1b[0m"
    assert (
        line == f"{local_time()} orders        {red_error} background task did not stop task=follow req={REQUEST_ID}\n"
    )


def test_an_exception_reads_as_its_line_then_its_traceback() -> None:
    try:
        1 / 0  # noqa: B018 - the exception is the point
    except ZeroDivisionError as error:
        entry = record("unexpected error in /shopmesh.orders.v1.OrderService/GetOrder", logging.ERROR)
        entry.exc_info = (type(error), error, error.__traceback__)
    lines = written(Terminal(), {"NO_COLOR": "1"}, entry).splitlines()
    assert lines[0] == (
        f"{local_time()} orders        ERROR unexpected error in /shopmesh.orders.v1.OrderService/GetOrder"
        f" req={REQUEST_ID}"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert "1 / 0" in "\n".join(lines[2:-1])


def test_json_keeps_its_fields_names_and_order() -> None:
    entry = json.loads(written(io.StringIO(), {}, record(**RPC_FIELDS)))
    assert list(entry) == [
        "level",
        "service",
        "logger",
        "message",
        "request_id",
        "trace_id",
        "span_id",
        "method",
        "grpc_status",
        "duration_ms",
        "timestamp",
    ]
    assert {name: value for name, value in entry.items() if name != "timestamp"} == {
        "level": "INFO",
        "service": "orders",
        "logger": "meshkit.status",
        "message": "rpc",
        "request_id": REQUEST_ID,
        "trace_id": None,
        "span_id": None,
        **RPC_FIELDS,
    }
    assert entry["timestamp"] == "2023-11-14T22:13:20.512000+00:00"


def test_json_is_kept_on_a_terminal_when_asked_for_and_carries_the_traceback() -> None:
    try:
        1 / 0  # noqa: B018 - the exception is the point
    except ZeroDivisionError as error:
        entry = record("unexpected error", logging.ERROR)
        entry.exc_info = (type(error), error, error.__traceback__)
    logged = json.loads(written(Terminal(), {"SHOPMESH_LOG_FORMAT": "json"}, entry))
    assert list(logged) == [
        "level",
        "service",
        "logger",
        "message",
        "request_id",
        "trace_id",
        "span_id",
        "exc_info",
        "timestamp",
    ]
    assert logged["exc_info"].startswith("Traceback (most recent call last):")
    assert logged["exc_info"].endswith("ZeroDivisionError: division by zero")
