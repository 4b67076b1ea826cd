"""The request id of the call being served (Envoy's x-request-id), kept for the
duration of the call so that outgoing calls pass it on and logs can name it."""

import contextvars

import grpc

REQUEST_ID_HEADER = "x-request-id"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id() -> str:
    return _request_id.get()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for a call made while serving another: the same request id."""
    current = _request_id.get()
    return ((REQUEST_ID_HEADER, current),) if current else ()


def bind(context: grpc.aio.ServicerContext) -> None:
    """Called at the start of every served call (by meshkit.status's interceptor)."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER:
            _request_id.set(value)
            return
    _request_id.set("")
