"""The scale table (python -m bench --scale): how the cost of ShopMesh's calls grows with
the data it holds. For each database backend and each size, a fresh ShopMesh over
databases pre-filled with that many orders (bench.loader): GetOrder, ListOrders and
CreateOrder rates (h2load), the order event stream read from its start as a follower
reads it, and idle WatchOrder streams notified at once; at the largest size also a
backlog of unsent emails drained by the Notification service.

A cost that grows with the data shows here and nowhere else: the default benchmark
starts from empty databases."""

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from bench import loader, loadgen
from bench.loadgen import Load
from bench.machine import describe
from bench.processes import ProcessMeter
from bench.suite import (
    AS_CUSTOMER,
    AS_OPERATOR,
    CREATE_PATH,
    CUSTOMER,
    GET_PATH,
    LIST_PAGE,
    LIST_PATH,
    OPERATOR,
    PRODUCT_ID,
    UNLIMITED,
    _access_log,
    _bearer,
    _create_product,
    _meter,
    _new_order,
    _token,
)
from bench.watchers import FanOut, fan_out
from devmesh import client
from devmesh.launcher import SERVICES, Layout, Mesh, cluster_health
from devmesh.postgres import DEFAULT_URL, PostgresServer
from devmesh.smtp_sink import SmtpSink
from meshkit import config, mesh_tls, resume
from meshkit.database import utcnow
from meshkit.money import NANOS_PER_UNIT, Money
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

# what the loaded orders cost: CreateOrder's product at its price
PRICE = Money.of("EUR", 1)
# the calls measured at each size, in the order they run (CreateOrder adds orders: last)
CALLS = ("GetOrder", "ListOrders", "CreateOrder")
# as many watchers on one client connection as the default benchmark puts (2,000 on 20):
# under Envoy's cap of calls open on one connection (ENVOY_CONNECTION_MAX_STREAMS, 128)
WATCHERS_PER_CONNECTION = 100
# Caps that would refuse some of 10,000 watchers (the Order service's total of open
# watches, Envoy's circuit breaker of the stream cluster), lifted as the default benchmark
# lifts the rate limits: the table measures what the streams cost, not where the caps are.
# A mesh stops between sizes with nothing in flight: no drain to wait for.
LIFTED = {
    **UNLIMITED,
    "ORDERS_MAX_WATCHES": "1000000",
    "ENVOY_STREAM_MAX_REQUESTS": "1000000",
    "SHUTDOWN_DRAIN_SECONDS": "0.2",
}
# the slowest rates taken for a failure rather than a figure: events read, emails sent
MIN_EVENTS_PER_SECOND = 1000
MIN_EMAILS_PER_SECOND = 50
DRAIN_POLL_SECONDS = 0.5
# the Order service's clusters in Envoy: unary calls, WatchOrder, StreamOrderEvents
ORDERS_CLUSTERS = ("orders", "orders_streams", "orders_events")
# how often Envoy's view of them is sampled, and how long they must stay routable after a
# fan-out before the next figure (Envoy needs two missed checks, 1 s apart, to take one out)
ROUTING_SAMPLE_SECONDS = 0.1
ROUTING_SETTLE_SECONDS = 3.0
ROUTING_WAIT_SECONDS = 60.0


class ScaleError(Exception):
    """The services did not read back what the loader wrote: no figure would be valid."""


@dataclass(frozen=True)
class ScaleOptions:
    # orders stored, one fresh mesh each, ascending
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    # unsent emails the Notification service drains, at the largest size
    backlog: int = 100_000
    # idle WatchOrder streams notified at once, at every size
    watchers: int = 10_000
    # seconds measured per rate, after warmup seconds not measured
    duration: float = 4.0
    warmup: float = 1.0
    connections: int = 4
    streams: int = 16
    # backend name -> PostgreSQL server URL (None for SQLite)
    backends: dict[str, str | None] = field(default_factory=lambda: {"sqlite": None, "postgresql": DEFAULT_URL})

    def __post_init__(self) -> None:
        if not self.sizes or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError("sizes must be distinct and ascending")
        if self.sizes[0] < loader.LISTED_ORDERS:
            raise ValueError(f"the smallest size must be at least {loader.LISTED_ORDERS} orders")
        if not 0 < self.backlog <= self.sizes[-1]:
            raise ValueError(f"the backlog must be 1 to {self.sizes[-1]} emails (the largest size's events)")
        if self.watchers < 1:
            raise ValueError("at least one watcher")

    @property
    def load(self) -> Load:
        return Load(self.connections, self.streams)


@dataclass(frozen=True)
class Rate:
    """One call's h2load run at one size."""

    rps: float
    p50_ms: float
    p99_ms: float
    # failed calls of the warm-up and the run, as h2load or Envoy's access log saw them
    errors: int
    error_kinds: dict[str, int]


@dataclass(frozen=True)
class CatchUp:
    """StreamOrderEvents from sequence 0 to the last stored event, read as a follower
    reads it (through Envoy's mesh listener, with the Notification service's identity)."""

    expected: int
    read: int
    seconds: float
    # events out of sequence or not the loaded ones (the first is checked whole)
    wrong: int
    # CPU seconds over the read: the reader (this process), and the mesh's processes
    reader_cpu_seconds: float
    cpu_seconds: dict[str, float]

    @property
    def events_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    @property
    def missing(self) -> int:
        return self.expected - self.read


@dataclass(frozen=True)
class Drain:
    """The Notification service started with `emails` unsent emails in its database,
    until the SMTP sink had all of them."""

    emails: int
    received: int
    # emails the sink got twice
    duplicates: int
    # from the service's start, and from its first email to its last
    seconds: float
    sending_seconds: float
    # CPU seconds over the drain: the sink (this process, which does little else meanwhile:
    # an upper bound of the sink's) and the Notification service (its start included)
    sink_cpu_seconds: float
    notifications_cpu_seconds: float
    load: loader.Loaded

    @property
    def sink_capacity_per_second(self) -> float:
        """Emails the sink would take per second with a core to itself, by its CPU per email."""
        return self.received / self.sink_cpu_seconds if self.sink_cpu_seconds else math.inf

    @property
    def emails_per_second(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    @property
    def missing(self) -> int:
        return self.emails - self.received


@dataclass(frozen=True)
class AtSize:
    """Every figure of one backend at one size."""

    orders: int
    load: loader.Loaded
    calls: dict[str, Rate]
    catch_up: CatchUp
    fan_out: FanOut
    # seconds in which Envoy routed to none of the Order service (its health checks missed)
    # while the watchers were opened, notified and closed, and right after; and which clusters
    unroutable_seconds: float = 0.0
    unroutable_clusters: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return (
            sum(rate.errors for rate in self.calls.values())
            + self.catch_up.missing
            + self.catch_up.wrong
            + self.fan_out.missed
        )


@dataclass
class BackendScale:
    sizes: list[AtSize] = field(default_factory=list)
    drain: Drain | None = None


@dataclass
class ScaleResults:
    options: dict
    machine: dict = field(default_factory=dict)
    backends: dict[str, BackendScale] = field(default_factory=dict)
    # the whole table's run time, and the part of it spent loading
    seconds: float = 0.0
    load_seconds: float = 0.0

    @property
    def errors(self) -> int:
        total = sum(at.errors for backend in self.backends.values() for at in backend.sizes)
        for backend in self.backends.values():
            if backend.drain:
                total += backend.drain.missing + backend.drain.duplicates
        return total

    def as_dict(self) -> dict:
        return {
            "options": self.options,
            "machine": self.machine,
            "errors": self.errors,
            "seconds": self.seconds,
            "load_seconds": self.load_seconds,
            "backends": {
                name: {
                    "sizes": [
                        {
                            **asdict(at),
                            "catch_up": {
                                **asdict(at.catch_up),
                                "missing": at.catch_up.missing,
                                "events_per_second": at.catch_up.events_per_second,
                            },
                            "load": _loaded_dict(at.load),
                        }
                        for at in backend.sizes
                    ],
                    "drain": None
                    if backend.drain is None
                    else {
                        **asdict(backend.drain),
                        "missing": backend.drain.missing,
                        "emails_per_second": backend.drain.emails_per_second,
                        "load": _loaded_dict(backend.drain.load),
                    },
                }
                for name, backend in self.backends.items()
            },
        }


def _loaded_dict(loaded: loader.Loaded) -> dict:
    return {**asdict(loaded), "rows_per_second": loaded.rows_per_second}


@dataclass(frozen=True)
class Stocked:
    """A running mesh over databases holding history."""

    mesh: Mesh
    databases: loader.Databases
    history: loader.History
    loaded: loader.Loaded
    sink: SmtpSink


class ScaleRun:
    def __init__(
        self, options: ScaleOptions, workdir: Path, say: Callable[[str], None] = print, keep: bool = False
    ) -> None:
        self.options = options
        self.workdir = workdir
        self.say = say
        self.keep = keep
        self.results = ScaleResults(options={**asdict(options), "backends": list(options.backends)}, machine=describe())

    def run(self) -> ScaleResults:
        started = time.monotonic()
        # each mesh verifies tokens with the key made in its own data directory (as Suite.run)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SMTP_", "SHOPMESH_JWKS_"))}
        try:
            for backend, pg_url in self.options.backends.items():
                found = self.results.backends[backend] = BackendScale()
                for size in self.options.sizes:
                    with self._stocked(base, backend, pg_url, size) as stocked:
                        found.sizes.append(self._at_size(stocked, backend, found))
        finally:
            self.results.seconds = time.monotonic() - started
        return self.results

    @contextlib.contextmanager
    def _stocked(self, base: dict, backend: str, pg_url: str | None, size: int) -> Iterator[Stocked]:
        """Fresh databases for size orders, migrated, loaded, and a mesh over them with an
        SMTP sink of its own; all of it stopped, dropped or deleted on exit."""
        data = self.workdir / backend / str(size)
        env = {**base, **LIFTED, "SHOPMESH_DATA_DIR": str(data)}
        server = PostgresServer(pg_url) if pg_url else None
        created: list[str] = []
        sink = SmtpSink().start()
        try:
            if server:
                for service in SERVICES:
                    created.append(url := server.create_database(f"scale_{service}"))
                    env[f"{service.upper()}_DATABASE_URL"] = url
            # the URLs the services take from env, their SQLite files in the data dir included
            databases = loader.Databases(
                **{s: config.database_url(env, f"{s.upper()}_DATABASE_URL", f"{s}.db") for s in SERVICES}
            )
            history = loader.History(size, CUSTOMER, PRODUCT_ID, PRICE, utcnow())
            self.say(f"{backend}, {size:,} orders: migrating and loading")
            started = time.monotonic()
            loader.migrate(databases)
            loaded = loader.load_history(databases, history)
            self.results.load_seconds += time.monotonic() - started
            self.say("  " + loaded_line(loaded))
            self.say(f"  starting ShopMesh on {backend}")
            with Mesh(Layout.on_free_ports({**env, **sink.env}), data / "run") as mesh:
                yield Stocked(mesh, databases, history, loaded, sink)
        finally:
            sink.stop()
            if server:
                for url in created:
                    server.drop_database(url)
                server.close()
            if not self.keep:
                shutil.rmtree(data, ignore_errors=True)

    def _at_size(self, stocked: Stocked, backend: str, found: BackendScale) -> AtSize:
        mesh, history = stocked.mesh, stocked.history
        public = mesh.layout.public
        customer_token = _token(mesh, CUSTOMER, AS_CUSTOMER)
        operator_token = _token(mesh, OPERATOR, AS_OPERATOR)
        with client.channel(public, operator_token) as channel:
            _create_product(channel)
        theirs = history.customers_orders()
        # GetOrder reads one of the customer's orders from the middle of the history;
        # WatchOrder watches their newest, which the fan-out confirms
        read, watched = history.order(theirs[len(theirs) // 2]), history.order(theirs[-1])
        with client.channel(public, customer_token) as channel:
            check_read_back(orders_pb2_grpc.OrderServiceStub(channel), history, read)
        bodies = {
            "GetOrder": (GET_PATH, orders_pb2.GetOrderRequest(order_id=read.order_id)),
            # no customer_email: a customer's list is their own
            "ListOrders": (LIST_PATH, orders_pb2.ListOrdersRequest(page_size=LIST_PAGE)),
            "CreateOrder": (CREATE_PATH, _new_order()),
        }
        calls = {name: self._rate(mesh, backend, name, *bodies[name], customer_token) for name in CALLS[:2]}

        self.say(f"  StreamOrderEvents from 0 to {history.orders:,}, as a follower reads it")
        catch_up = asyncio.run(read_stream(mesh, history))
        connections = math.ceil(self.options.watchers / WATCHERS_PER_CONNECTION)
        self.say(f"  {self.options.watchers:,} watchers of one order on {connections} connections")
        meter = _meter(mesh)
        with routing(mesh) as outage:
            fanned = asyncio.run(
                fan_out(
                    public,
                    watched.order_id,
                    self.options.watchers,
                    connections,
                    lambda: meter.rss_mb("orders"),
                    watcher_token=customer_token,
                    operator_token=operator_token,
                )
            )
        if outage.seconds:
            self.say(
                f"  Envoy routed to no Order service for {outage.seconds:.1f} s "
                f"({', '.join(sorted(outage.clusters))}): its health checks went unanswered"
            )
        if history.orders == self.options.sizes[-1]:
            found.drain = self._drain(stocked)
            mesh.wait_envoy_healthy(ROUTING_WAIT_SECONDS)
        calls["CreateOrder"] = self._rate(mesh, backend, "CreateOrder", *bodies["CreateOrder"], customer_token)
        return AtSize(history.orders, stocked.loaded, calls, catch_up, fanned, outage.seconds, sorted(outage.clusters))

    def _rate(self, mesh: Mesh, backend: str, name: str, path: str, message, token: str) -> Rate:
        """A warm-up run, then the measured one; errors of both count."""
        load = self.options.load
        self.say(f"  {name} on {backend}: {load.in_flight} in flight")
        body = self.workdir / f"scale-{name}.grpc"
        body.write_bytes(loadgen.grpc_frame(message))
        url, headers = f"http://{mesh.layout.public}{path}", _bearer(token)
        log = _access_log(mesh)
        mark = log.mark()
        warm = loadgen.h2load(url, body, load, self.options.warmup, headers)
        result = loadgen.h2load(url, body, load, self.options.duration, headers)
        failures = log.failures_since(mark)
        if warm.failed + result.failed:
            failures["h2load failures"] += warm.failed + result.failed
        return Rate(result.rps, result.p50_ms, result.p99_ms, sum(failures.values()), dict(failures))

    def _drain(self, stocked: Stocked) -> Drain:
        """Stops the Notification service, gives it options.backlog unsent emails, starts it
        again, and waits until the sink has every one."""
        mesh, emails = stocked.mesh, self.options.backlog
        self.say(f"  draining {emails:,} unsent emails into the SMTP sink")
        mesh.stop_process("notifications")
        started = time.monotonic()
        loaded = loader.load_backlog(stocked.databases.notifications, stocked.history, emails)
        self.results.load_seconds += time.monotonic() - started
        self.say("  " + loaded_line(loaded))
        wanted = loader.backlog_message_ids(stocked.history, emails)
        checked = len(stocked.sink.received())
        cpu, wall = time.process_time(), time.time()
        mesh.start_service("notifications")
        meter = ProcessMeter({"notifications": mesh.processes["notifications"].pid})
        deadline = time.monotonic() + 120 + emails / MIN_EMAILS_PER_SECOND
        arrivals: dict[str, float] = {}
        duplicates = 0
        while len(arrivals) < emails and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_SECONDS)
            received = stocked.sink.received()
            for message in received[checked:]:
                if message.message_id in wanted:
                    if message.message_id in arrivals:
                        duplicates += 1
                    arrivals.setdefault(message.message_id, message.accepted_at)
            checked = len(received)
        sink_cpu = time.process_time() - cpu
        service_cpu = meter.cpu_seconds()["notifications"]
        times = sorted(arrivals.values()) or [wall]
        return Drain(
            emails, len(arrivals), duplicates, times[-1] - wall, times[-1] - times[0], sink_cpu, service_cpu, loaded
        )


def loaded_line(loaded: loader.Loaded) -> str:
    line = (
        f"loaded {loaded.what} ({loaded.rows:,} rows) in {loaded.seconds:.1f} s: "
        f"{loaded.rows_per_second:,.0f} rows/s ({loaded.method})"
    )
    if loaded.settle_seconds:
        line += f", then VACUUM ANALYZE {loaded.settle_seconds:.1f} s"
    return line


def check_read_back(stub: orders_pb2_grpc.OrderServiceStub, history: loader.History, order) -> None:
    """The loaded order and the customer's first page as the API answers them: ScaleError
    if the services do not read the loader's rows as their own (a column the loader does
    not know yet, say)."""
    try:
        got = stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id), timeout=10)
        page = stub.ListOrders(orders_pb2.ListOrdersRequest(page_size=LIST_PAGE), timeout=10)
    except grpc.RpcError as error:
        raise ScaleError(f"the loaded orders cannot be read: {error.code()} {error.details()}") from None
    newest = history.order(history.customers_orders()[-1])
    wanted = (
        order.order_id,
        order.customer_email,
        orders_pb2.ORDER_STATUS_PENDING,
        order.total.nanos,
        order.create_time,
    )
    answered = (
        got.order_id,
        got.customer_email,
        got.status,
        got.total.units * NANOS_PER_UNIT + got.total.nanos,
        got.create_time.ToDatetime(dt.UTC),
    )
    if answered != wanted or len(got.items) != 1 or len(page.orders) != LIST_PAGE:
        raise ScaleError(f"GetOrder answers {answered} for the loaded {wanted}, ListOrders {len(page.orders)} orders")
    if page.orders[0].order_id != newest.order_id:
        raise ScaleError("ListOrders' first page does not start with the customer's newest loaded order")


async def read_stream(mesh: Mesh, history: loader.History) -> CatchUp:
    """StreamOrderEvents from 0 until the history's last event, over the channel the
    Notification service follows it on (Envoy's mesh listener, its identity, the
    follower's keepalive), until that event or a deadline."""
    meter = _meter(mesh)
    channel = mesh_tls.MeshChannel(
        mesh.layout.tls("notifications"), mesh.layout.mesh, options=resume.FOLLOWER_CHANNEL_OPTIONS
    )
    first = history.order(0)
    read = wrong = last = 0
    cpu, before = time.process_time(), meter.cpu_seconds()
    started = time.perf_counter()
    stream = orders_pb2_grpc.OrderServiceStub(channel).StreamOrderEvents(
        orders_pb2.StreamOrderEventsRequest(after_sequence=0), wait_for_ready=True
    )
    try:
        async with asyncio.timeout(60 + history.orders / MIN_EVENTS_PER_SECOND):
            async for event in stream:
                read += 1
                if event.sequence != last + 1 or (event.sequence == 1 and event.order.order_id != first.order_id):
                    wrong += 1
                last = event.sequence
                if last >= history.orders:
                    break
    except TimeoutError:
        pass
    finally:
        seconds = time.perf_counter() - started
        stream.cancel()
        await channel.close()
    return CatchUp(history.orders, read, seconds, wrong, time.process_time() - cpu, meter.cpu_since(before))


@dataclass
class Outage:
    """Seconds in which Envoy routed to none of the Order service's hosts, and through which clusters."""

    seconds: float = 0.0
    clusters: set[str] = field(default_factory=set)


@contextlib.contextmanager
def routing(mesh: Mesh) -> Iterator[Outage]:
    """Samples Envoy's health view of the Order service in a thread while the block runs,
    and after it until every cluster has been routable for ROUTING_SETTLE_SECONDS (a stall
    shows in the health checks only a few seconds later): the next figure is not taken
    while Envoy still refuses calls, and the time it refused them is a figure itself."""
    outage = Outage()
    ended = threading.Event()

    def sample() -> None:
        deadline = None
        routable_since: float | None = None
        last = time.monotonic()
        while True:
            try:
                health = cluster_health(mesh.layout.admin, ORDERS_CLUSTERS)
            except OSError:
                health = {}
            now = time.monotonic()
            out = {name for name, hosts in health.items() if not any(hosts)}
            if out:
                outage.seconds += now - last
                outage.clusters |= out
                routable_since = None
            elif routable_since is None:
                routable_since = now
            last = now
            if ended.is_set():
                deadline = deadline or now + ROUTING_WAIT_SECONDS
                if (routable_since is not None and now - routable_since >= ROUTING_SETTLE_SECONDS) or now > deadline:
                    return
            time.sleep(ROUTING_SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, name="routing", daemon=True)
    sampler.start()
    try:
        yield outage
    finally:
        ended.set()
        sampler.join()
