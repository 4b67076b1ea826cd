"""The one place where domain errors become gRPC status codes with google.rpc details.

Every error is sent with context.abort() before any response message, so it
travels as a trailers-only response that Envoy can retry, count and turn into
an HTTP status.
"""

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import metrics

from meshkit import errors, mesh_tls, request_context

log = logging.getLogger(__name__)

_Detail = TypeVar("_Detail", bound=Message)
# the context of a served call, whatever its messages
_Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# typeshed's RpcMethodHandler describes a blocking server's handlers: a grpc.aio server's
# behaviours are coroutine functions and async generator functions of a grpc.aio context,
# which the interceptor tells apart at run time (the stub's generic class is not one at run time)
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_UnaryBehaviour: TypeAlias = Callable[[object, _Context], Awaitable[object]]
_StreamBehaviour: TypeAlias = Callable[[object, _Context], AsyncIterator[object]]

# Envoy checks every service's health each second: logged at INFO, those lines would
# bury everything else. A failed check is still INFO.
ROUTINE_METHOD_PREFIX = "/grpc.health.v1.Health/"

_CODES = (
    (errors.InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (errors.NotFound, code_pb2.NOT_FOUND),
    (errors.AlreadyExists, code_pb2.ALREADY_EXISTS),
    (errors.FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (errors.PermissionDenied, code_pb2.PERMISSION_DENIED),
    (errors.ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (errors.Unavailable, code_pb2.UNAVAILABLE),
    (errors.DeadlineExceeded, code_pb2.DEADLINE_EXCEEDED),
    (errors.Internal, code_pb2.INTERNAL),
)


def _packed(message: Message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def _details(error: errors.DomainError, domain: str) -> list[Message]:
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=error.reason, domain=domain)]
    if isinstance(error, errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, errors.FailedPrecondition) and error.violations:
        details.append(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, errors.ResourceExhausted):
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, (errors.NotFound, errors.AlreadyExists)):
        names = error.names if isinstance(error, errors.NotFound) else [error.name]
        details.extend(
            error_details_pb2.ResourceInfo(resource_type=error.resource_type, resource_name=name) for name in names
        )
    return details


def to_status(error: errors.DomainError, domain: str) -> status_pb2.Status:
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.INTERNAL)
    return status_pb2.Status(
        code=code,
        message=error.message,
        details=[_packed(d) for d in _details(error, domain)],
    )


async def abort(context: _Context, error: errors.DomainError, domain: str) -> NoReturn:
    status = rpc_status.to_status(to_status(error, domain))
    await context.abort(status.code, status.details, status.trailing_metadata)


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every served call: binds its request id (meshkit.request_context),
    turns DomainError into a rich status and any unexpected exception into
    INTERNAL without leaking its text to the client (it is logged instead), and
    logs one line when the call ends: method, gRPC status, duration.

    Only peers whose SPIFFE ID is in admitted are served (the TLS handshake already
    proved the mesh CA signed their certificate); the rest get PERMISSION_DENIED.
    """

    def __init__(self, domain: str, admitted: frozenset[str]) -> None:
        self._domain = domain
        self._admitted = admitted
        self._envoy = mesh_tls.spiffe_id(mesh_tls.ENVOY)
        # method -> (grpc's handler, that handler wrapped)
        self._wrapped: dict[str, tuple[_Handler, _Handler]] = {}
        # OpenTelemetry's RPC metric: one histogram gives counts and latencies per method and code.
        self._duration = metrics.get_meter("meshkit").create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of served gRPC calls"
        )

    async def _fail(self, context: _Context, error: Exception, method: str) -> NoReturn:
        if isinstance(error, errors.DomainError):
            await abort(context, error, self._domain)
        log.exception("unexpected error in %s", method, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    async def _admit(self, context: _Context) -> None:
        """Binds the call's request id and caller; PERMISSION_DENIED for a peer not admitted."""
        peer = mesh_tls.peer_id(context)
        request_context.bind(context, from_envoy=peer == self._envoy)
        if peer not in self._admitted:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this port serves Envoy and operators only")

    async def _answer(
        self, error: BaseException, context: _Context, method: str
    ) -> tuple[grpc.StatusCode, BaseException]:
        """The code a call that raised error ends with, and what it raises then: error itself
        where grpc handles it (an abort, a cancellation, a stream closed early), else the
        AbortError of answering it (a DomainError mapped, anything else as INTERNAL)."""
        if isinstance(error, grpc.aio.AbortError):
            return _code_set(context) or grpc.StatusCode.UNKNOWN, error
        if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            return grpc.StatusCode.CANCELLED, error
        if not isinstance(error, Exception):
            return grpc.StatusCode.UNKNOWN, error
        try:
            await self._fail(context, error, method)
        except grpc.aio.AbortError as aborted:
            return _code_set(context) or grpc.StatusCode.INTERNAL, aborted

    def _ended(self, method: str, started: float, code: grpc.StatusCode) -> None:
        """The call's metric and its log line."""
        status = code.name if isinstance(code, grpc.StatusCode) else str(code)
        duration_ms = (time.perf_counter() - started) * 1000
        service, _, name = method.lstrip("/").rpartition("/")
        self._duration.record(
            duration_ms, {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name, "rpc.grpc.status": status}
        )
        routine = method.startswith(ROUTINE_METHOD_PREFIX) and code == grpc.StatusCode.OK
        log.log(
            logging.DEBUG if routine else logging.INFO,
            "rpc",
            extra={"method": method, "grpc_status": status, "duration_ms": round(duration_ms, 2)},
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable["_Handler | None"]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "_Handler | None":
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        # Wrapped once per method (grpc finds the same handler for every call of a method).
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None or wrapped[0] is not handler:
            wrapped = self._wrapped[method] = (handler, self._wrap(handler, method))
        return wrapped[1]

    def _wrap(self, handler: _Handler, method: str) -> _Handler:
        """handler with each call admitted, answered when it fails (_answer) and logged."""
        inner = _coroutine_function(handler.unary_unary)
        if inner is not None:

            async def unary_unary(request: object, context: _Context) -> object:
                started, code = time.perf_counter(), grpc.StatusCode.OK
                try:
                    await self._admit(context)
                    return await inner(_decoded(request, method), context)
                except BaseException as error:  # noqa: BLE001 - answered, then raised again
                    code, raised = await self._answer(error, context, method)
                    raise raised  # noqa: B904 - error itself, or the AbortError answering it (its __context__ is error)
                finally:
                    self._ended(method, started, code)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, _lenient(handler.request_deserializer), handler.response_serializer
            )
        stream = _async_generator_function(handler.unary_stream)
        if stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(stream, method, decode=True),
                _lenient(handler.request_deserializer),
                handler.response_serializer,
            )
        stream = _async_generator_function(handler.stream_stream)
        if stream is not None:  # reflection
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(stream, method, decode=False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    def _wrap_stream(self, inner: _StreamBehaviour, method: str, decode: bool) -> _StreamBehaviour:
        async def stream(request: object, context: _Context) -> AsyncIterator[object]:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                await self._admit(context)
                async for response in inner(_decoded(request, method) if decode else request, context):
                    yield response
            except BaseException as error:  # noqa: BLE001 - answered, then raised again
                code, raised = await self._answer(error, context, method)
                raise raised  # noqa: B904 - error itself, or the AbortError answering it (its __context__ is error)
            finally:
                self._ended(method, started, code)

        return stream


def _code_set(context: _Context) -> grpc.StatusCode | None:
    """The code the call is to end with; None while none is set (typeshed's grpcio stub
    leaves the None out)."""
    return context.code()


def _coroutine_function(behaviour: object) -> _UnaryBehaviour | None:
    """behaviour when it is a grpc.aio servicer's unary one (a coroutine function)."""
    return behaviour if inspect.iscoroutinefunction(behaviour) else None


def _async_generator_function(behaviour: object) -> _StreamBehaviour | None:
    """behaviour when it is a grpc.aio servicer's streaming one (an async generator function)."""
    return behaviour if inspect.isasyncgenfunction(behaviour) else None


class _Undecodable:
    """A request whose bytes are no message of its type (grpc would answer UNKNOWN with
    the parser's own words)."""


_UNDECODABLE = _Undecodable()


def _lenient(deserialize: Callable[[bytes], object] | None) -> Callable[[bytes], object] | None:
    """deserialize, answering _UNDECODABLE for bytes it cannot parse (none: grpc passes the bytes)."""
    if deserialize is None:
        return None

    def lenient(data: bytes) -> object:
        try:
            return deserialize(data)
        except DecodeError:
            return _UNDECODABLE

    return lenient


def _decoded(request: object, method: str) -> object:
    """The request, or INVALID_ARGUMENT (inside the call, so it is logged and mapped like
    any other) when its bytes could not be parsed."""
    if request is _UNDECODABLE:
        raise errors.InvalidArgument([errors.FieldViolation("", f"the request is not a valid message for {method}")])
    return request


_Code = grpc.StatusCode
# The code this service answers with when a call it made to a peer failed with the key's.
# A peer's verdict on what the caller asked for (an unknown product, too little stock) is
# passed on as it is; the rest is the mesh's trouble, told in ShopMesh's words: UNAVAILABLE
# only where trying again may help, INTERNAL where it will not.
PEER_CODE_TO_OURS = {
    _Code.NOT_FOUND: _Code.NOT_FOUND,
    _Code.ALREADY_EXISTS: _Code.ALREADY_EXISTS,
    _Code.FAILED_PRECONDITION: _Code.FAILED_PRECONDITION,
    # this service's own request was malformed: a bug here, not the caller's (unless the
    # peer named only fields the caller gave: then INVALID_ARGUMENT, see code_for_caller)
    _Code.INVALID_ARGUMENT: _Code.INTERNAL,
    _Code.OUT_OF_RANGE: _Code.INTERNAL,
    # the peer is down, restarting, overloaded or lost a race: the same call may pass soon
    _Code.UNAVAILABLE: _Code.UNAVAILABLE,
    _Code.RESOURCE_EXHAUSTED: _Code.UNAVAILABLE,
    _Code.ABORTED: _Code.UNAVAILABLE,
    _Code.CANCELLED: _Code.UNAVAILABLE,
    _Code.DEADLINE_EXCEEDED: _Code.DEADLINE_EXCEEDED,
    # the peer failed, or the mesh refused this service's own call (its identity, a method
    # the peer lacks): the same call fails again
    _Code.INTERNAL: _Code.INTERNAL,
    _Code.UNKNOWN: _Code.INTERNAL,
    _Code.DATA_LOSS: _Code.INTERNAL,
    _Code.UNIMPLEMENTED: _Code.INTERNAL,
    _Code.UNAUTHENTICATED: _Code.INTERNAL,
    _Code.PERMISSION_DENIED: _Code.INTERNAL,
}


def code_for_caller(peer_code: grpc.StatusCode, blames_callers_input: bool = False) -> grpc.StatusCode:
    """PEER_CODE_TO_OURS[peer_code]; an INVALID_ARGUMENT or OUT_OF_RANGE that names only
    fields this service copied from its caller's request is the caller's (blames_callers_input)."""
    if peer_code in (_Code.INVALID_ARGUMENT, _Code.OUT_OF_RANGE) and blames_callers_input:
        return _Code.INVALID_ARGUMENT
    return PEER_CODE_TO_OURS.get(peer_code, _Code.INTERNAL)


def _peer_failure(code: grpc.StatusCode, peer: str) -> errors.DomainError:
    """The error for a failure of the mesh, in ShopMesh's words: never the peer's or
    Envoy's own text ("upstream connect error ...", "no healthy upstream")."""
    if code == _Code.UNAVAILABLE:
        return errors.Unavailable(f"{peer} is unavailable; try again later")
    if code == _Code.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(f"{peer} did not answer in time")
    request_id = request_context.request_id()
    logged = f" under request id {request_id}" if request_id else ""
    return errors.Internal(f"{peer} could not handle this request: a fault of ShopMesh, logged{logged}")


def _unpacked(details: Iterable[any_pb2.Any], kind: type[_Detail]) -> list[_Detail]:
    """The details of kind among details, in their order."""
    found = []
    for detail in details:
        message = kind()
        if detail.Unpack(message):  # False, and message left empty, for a detail of another kind
            found.append(message)
    return found


def from_rpc_error(error: grpc.aio.AioRpcError, peer: str, callers_fields: tuple[str, ...] = ()) -> errors.DomainError:
    """The DomainError to answer with when a call to peer failed (see PEER_CODE_TO_OURS).
    A peer's NOT_FOUND, ALREADY_EXISTS or FAILED_PRECONDITION, and an INVALID_ARGUMENT about
    callers_fields only (request fields this service copied from its caller's, such as
    "items"), go on with the peer's details; for anything else the peer's code and text go
    to the log, with the request id, and the caller gets ShopMesh's words."""
    status: status_pb2.Status | None = rpc_status.from_call(error)  # grpcio-status ships no type stubs
    details = list(status.details) if status else []
    infos = _unpacked(details, error_details_pb2.ErrorInfo)
    reason = infos[0].reason if infos else None
    resources = _unpacked(details, error_details_pb2.ResourceInfo)
    peer_code, text = error.code(), error.details() or ""
    violations = [
        errors.FieldViolation(v.field, v.description)
        for bad in _unpacked(details, error_details_pb2.BadRequest)
        for v in bad.field_violations
    ]
    blames_caller = bool(violations) and all(v.field.startswith(callers_fields) for v in violations)  # () blames none
    code = code_for_caller(peer_code, blames_caller)
    if code == _Code.INVALID_ARGUMENT:
        return errors.InvalidArgument(violations)
    if code == _Code.NOT_FOUND:
        resource_type = resources[0].resource_type if resources else "resource"
        return errors.NotFound(resource_type, [r.resource_name for r in resources] or [text])
    if code == _Code.FAILED_PRECONDITION:
        preconditions = [
            errors.PreconditionViolation(v.type, v.subject, v.description)
            for failure in _unpacked(details, error_details_pb2.PreconditionFailure)
            for v in failure.violations
        ]
        return errors.FailedPrecondition(text, preconditions, reason=reason)
    if code == _Code.ALREADY_EXISTS:
        name = resources[0].resource_name if resources else ""
        return errors.AlreadyExists(resources[0].resource_type if resources else "resource", name, text)
    log.log(
        logging.ERROR if code == _Code.INTERNAL else logging.WARNING,
        "a call to %s failed: %s %s",
        peer,
        peer_code.name,
        text,
        extra={"peer": peer, "peer_code": peer_code.name, "peer_details": text},
    )
    return _peer_failure(code, peer)
