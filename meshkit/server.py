"""Server bootstrap shared by every service: a grpc.aio server on mutual TLS with the
error interceptor, standard health checking, reflection and graceful shutdown.

create_server() builds a server without starting it (tests start it in-process);
serve() runs one until SIGTERM or SIGINT, or until a background task fails; run() is what
`python -m <service>` calls.
"""

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from meshkit import config, logs, mesh_tls, telemetry
from meshkit.status import CallInterceptor

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
BACKGROUND_STOP_SECONDS = 5.0
# Between NOT_SERVING and closing the port: long enough for Envoy's health checks
# (1 s apart, 2 failures) to move traffic away, so no new call meets a closed port.
SHUTDOWN_DRAIN_SECONDS = 3.0
# Every ShopMesh message is small; refuse anything larger early (RESOURCE_EXHAUSTED).
MAX_MESSAGE_BYTES = 1024 * 1024
# The v1 reflection protocol is wire-identical to v1alpha; newer clients ask v1 first.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
# HTTP/2 keepalive pings that peers may send, even on a quiet stream or connection (a
# follower's channel, resume.FOLLOWER_CHANNEL_OPTIONS, and Envoy's upstream pings every
# 3 s): grpc's default of one per 5 minutes answers a ping every 10 s with GOAWAY
# "too_many_pings" after 30 s, breaking every stream on the connection.
KEEPALIVE_ACCEPTED = [
    ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
    ("grpc.keepalive_permit_without_calls", 1),
]

_Servicer = TypeVar("_Servicer")


@dataclass(frozen=True)
class ServiceBinding(Generic[_Servicer]):
    """A servicer and the generated function that adds it to a server (the type checker
    holds each pair to the generated servicer class)."""

    name: str  # full service name, e.g. shopmesh.orders.v1.OrderService
    servicer: _Servicer
    add_to_server: Callable[[_Servicer, grpc.aio.Server], None]

    def add_to(self, server: grpc.aio.Server) -> None:
        self.add_to_server(self.servicer, server)


@dataclass
class MeshServer:
    """A built server and what runs and closes with it.

    background: coroutine functions run as tasks while the server runs
    (consumers, senders, change feeds); cancelled when it stops.
    on_stopping: called once health says NOT_SERVING, before in-flight calls
    are waited for (e.g. to end streams that would otherwise never finish).
    on_close: called last, after the server has stopped (databases, channels).

    A background task that fails (an error it could not outlive: a bug, not an
    outage) makes health NOT_SERVING for every name at once, names itself in
    failed_task and sets failed: serving without it would be a lie.
    """

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: list[str]
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_stopping: list[Callable[[], None]] = field(default_factory=list)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    failed_task: str = ""
    # plaintext, standard health only (listen_for_probes); started and stopped with the server
    probes: grpc.aio.Server | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False
    _reporting: asyncio.Task[None] | None = None

    def listen_for_probes(self, listen: str) -> int:
        """Also serves the standard health service, and nothing else, in plaintext on listen:
        for probes that cannot present a mesh certificate (a kubelet's gRPC probes). It
        tells whether this process serves, which a caller could learn from its port anyway."""
        self.probes = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.probes)
        try:
            return self.probes.add_insecure_port(listen)
        except RuntimeError as error:
            raise config.ConfigError(f"cannot listen on {listen}: {error}") from None

    async def start(self) -> None:
        await self.server.start()
        if self.probes is not None:
            await self.probes.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._tasks = [asyncio.create_task(run(), name=run.__qualname__) for run in self.background]
        for task in self._tasks:
            task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self._stopping or self.failed.is_set():
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
            return
        self.failed_task = task.get_name()
        log.error(
            "background task %s failed; the service cannot go on and stops",
            task.get_name(),
            exc_info=task.exception(),
            extra={"task": task.get_name()},
        )
        self._reporting = asyncio.get_running_loop().create_task(self.health.enter_graceful_shutdown())
        self.failed.set()

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS, drain: float = 0.0) -> None:
        """NOT_SERVING first, then keep serving for drain seconds while Envoy's health
        checks move traffic away; then stop background work and taking calls, let
        in-flight ones finish within grace, and close resources."""
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        for stopping in self.on_stopping:
            stopping()
        await asyncio.sleep(drain)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that ignores its cancellation must not hold shutdown forever.
            _, stuck = await asyncio.wait(self._tasks, timeout=BACKGROUND_STOP_SECONDS)
            for task in stuck:
                log.error("background task did not stop", extra={"task": task.get_name()})
        await self.server.stop(grace)
        if self.probes is not None:
            await self.probes.stop(0)
        for close in reversed(self.on_close):
            await close()


class BackgroundTaskFailed(Exception):
    """serve() stopped the server because one of its background tasks failed."""


def _add_reflection(server: grpc.aio.Server, names: Sequence[str]) -> None:
    reflection.enable_server_reflection([*names, REFLECTION_V1], server)
    servicer = reflection.aio.ReflectionServicer([*names, REFLECTION_V1])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


def create_server(
    listen: str,
    bindings: Sequence[ServiceBinding[Any]],  # each pair checked where it was made
    *,
    error_domain: str,
    tls: mesh_tls.MeshTls,
    reflect_also: Sequence[str] = (),
) -> MeshServer:
    """Builds (does not start) a server on listen ("host:port"; port 0 picks one) that
    takes only callers with a certificate of the mesh CA (tls): Envoy, whose caller
    headers it believes, an operator's, and its own (a probe inside its container).

    reflect_also names services this server does not serve but whose
    descriptors its reflection should describe.
    """
    server = grpc.aio.server(
        interceptors=[
            CallInterceptor(
                error_domain,
                admitted=frozenset(map(mesh_tls.spiffe_id, (mesh_tls.ENVOY, mesh_tls.OPERATOR, tls.name))),
            )
        ],
        # A second server on a busy port must fail, not share it silently.
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), *KEEPALIVE_ACCEPTED],
    )
    for binding in bindings:
        binding.add_to(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.name for b in bindings]
    _add_reflection(server, [*names, *reflect_also, health.SERVICE_NAME, reflection.SERVICE_NAME])
    try:
        port = server.add_secure_port(listen, tls.server_credentials())
    except RuntimeError as error:
        raise config.ConfigError(f"cannot listen on {listen}: {error}") from None
    return MeshServer(server, health_servicer, port, names)


async def serve(app: MeshServer, drain: float = SHUTDOWN_DRAIN_SECONDS) -> None:
    """Runs app until SIGTERM or SIGINT, or until a background task fails, then shuts it
    down gracefully. Raises BackgroundTaskFailed in the second case."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, signalled.set)
    try:
        await app.start()
        log.info("serving", extra={"port": app.port, "services": app.service_names})
        waits = [asyncio.create_task(signalled.wait()), asyncio.create_task(app.failed.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        log.info("shutting down", extra={"drain_seconds": drain, "grace_seconds": SHUTDOWN_GRACE_SECONDS})
        await app.stop(drain=drain)
        log.info("stopped")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    if app.failed_task:
        raise BackgroundTaskFailed(app.failed_task)


def run(service: str, create_app: Callable[[Mapping[str, str]], Awaitable[MeshServer]]) -> None:
    """Entry point of `python -m <service>`: configure logging, build, serve.
    A configuration error ends the process with one line on stderr and status 2; a failed
    background task (logged when it failed) with status 1, so that compose or Kubernetes
    start the service again."""

    async def main() -> None:
        env = config.environ()
        drain = config.seconds(env, "SHUTDOWN_DRAIN_SECONDS", SHUTDOWN_DRAIN_SECONDS, minimum=0.0)
        # HEALTH_LISTEN: where a kubelet's gRPC probes ask (plaintext, health only); unset: nowhere
        probes = config.address(env, "HEALTH_LISTEN", "") if config.get(env, "HEALTH_LISTEN", "") else None
        providers = telemetry.configure(service, env)
        try:
            app = await create_app(env)
            if probes is not None:
                app.listen_for_probes(probes)
            await serve(app, drain)
        finally:
            for provider in providers:
                provider.shutdown()  # exports what is still buffered

    try:
        logs.configure(service, config.environ())  # a bad SHOPMESH_LOG_FORMAT is reported like any setting
        asyncio.run(main())
    except config.ConfigError as error:
        print(f"{service}: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    except BackgroundTaskFailed:
        sys.exit(1)
