"""The call being served: its request id (Envoy's x-request-id), kept for the duration
of the call so that outgoing calls pass it on and logs can name it, and its caller
(meshkit.caller)."""

import contextvars
from typing import Any

import grpc

from meshkit import caller as callers

REQUEST_ID_HEADER = "x-request-id"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# a call with no caller headers: another service on the mesh listener
_SERVICE = callers.Caller()
_caller: contextvars.ContextVar[callers.Caller] = contextvars.ContextVar("caller", default=_SERVICE)


def request_id() -> str:
    return _request_id.get()


def caller() -> callers.Caller:
    """Who the call being served is for (a service calling directly: nobody in particular)."""
    return _caller.get()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for a call made while serving another: the same request id."""
    current = _request_id.get()
    return ((REQUEST_ID_HEADER, current),) if current else ()


def bind(context: grpc.aio.ServicerContext[Any, Any], from_envoy: bool) -> None:
    """Called at the start of every served call (by meshkit.status's interceptor). The
    caller headers count only when the peer is Envoy (its certificate's SPIFFE ID): from
    anyone else they are ignored, as forged."""
    metadata = context.invocation_metadata() or ()
    # a text header's value is a str (only a -bin header's is bytes)
    _request_id.set(next((value for key, value in metadata if key == REQUEST_ID_HEADER and isinstance(value, str)), ""))
    _caller.set(callers.from_metadata(metadata) if from_envoy else _SERVICE)
