"""The benchmark's scenarios, run against meshes it starts itself: an anchor (a
trivial echo behind ShopMesh's own Envoy template, over mutual TLS as every hop of
ShopMesh is) and a fresh ShopMesh per database backend, each on free loopback ports."""

import asyncio
import contextlib
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from google.type import money_pb2

from bench import loadgen, profile
from bench.accesslog import AccessLog
from bench.anchor import ECHO, PlaintextEnvoy, echo_identity, plaintext_upstream_envoy
from bench.lag import Lag, notification_lag
from bench.loadgen import Load, LoadResult
from bench.machine import describe
from bench.processes import ProcessMeter
from bench.profile import Hotspot
from bench.watchers import FanOut, fan_out
from devmesh import client, envoy_config
from devmesh.launcher import SERVICES, Layout, Mesh
from devmesh.ports import free_port
from devmesh.postgres import PostgresServer
from devmesh.smtp_sink import SmtpSink
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc

PRODUCT_ID = "BENCH-1"
CUSTOMER = "bench@example.com"
OPERATOR = "staff@example.com"
# The echo called straight, on its plaintext port: h2load (nghttp2) cannot present the client
# certificate its mutual TLS port requires.
DIRECT = "echo gRPC direct (plaintext)"
# The anchor: the echo answering GetOrder through Envoy, called as ShopMesh's GetOrder is
# (a customer's token, verified and judged by Envoy). Every ratio is to this one, or to its
# twin at the wide shape (wide()) for the figures measured at that shape.
ANCHOR = "echo gRPC via Envoy"
# The same Envoy and echo, on a method anyone may call (GetProduct), without a token:
# the difference to the anchor is what the token check costs (jwt_authn + rbac).
ANONYMOUS = "echo gRPC via Envoy, anonymous GetProduct (no token check)"
# The anchor's calls through a second Envoy, the same config but for its service clusters,
# which speak plaintext to the echo's plaintext port: the difference is what mutual TLS
# between Envoy and a service costs (a benchmark-only config: ShopMesh has no such switch).
PLAINTEXT_UPSTREAM = "echo gRPC via Envoy, plaintext upstream (no mTLS)"
# who makes a scenario's calls (a column of the table)
AS_CUSTOMER, AS_OPERATOR, AS_ANYONE = "customer", "operator", "anonymous"
# Tokens outlive any run (a long --duration must not end in 401s); they are signed with a
# key made in the run's own work directory and accepted only by the meshes it starts.
TOKEN_TTL_SECONDS = 6 * 3600
# loads measured together run in this many rounds each (alternation())
ROUNDS_EACH = 4
# ListOrders reads a full page: the customer has at least this many orders
LIST_PAGE = 50
# Limits that would cap every figure at their own rate, lifted: the public listener's
# rate limits, and the per-caller cap on open watches.
UNLIMITED = {
    "ENVOY_RATE_LIMIT_RPS": "1000000",
    "ENVOY_RATE_LIMIT_BURST": "1000000",
    # every load generator runs on one address: its own bucket would cap the figures too
    "ENVOY_CLIENT_RATE_LIMIT_RPS": "1000000",
    "ENVOY_CLIENT_RATE_LIMIT_BURST": "1000000",
    # the fan-out's watchers are one customer's: its per-caller cap would refuse all but 16
    "ORDERS_MAX_WATCHES_PER_CLIENT": "1000000",
}
# notification lag: orders placed one at a time, and how many at once in the burst
LAG_ALONE = 20
LAG_BURST = 16
GET_PATH = "/shopmesh.orders.v1.OrderService/GetOrder"
CREATE_PATH = "/shopmesh.orders.v1.OrderService/CreateOrder"
LIST_PATH = "/shopmesh.orders.v1.OrderService/ListOrders"
PRODUCT_PATH = "/shopmesh.inventory.v1.InventoryService/GetProduct"


def wide(scenario: str, load: Load) -> str:
    """The name of scenario measured again at the wide shape (load)."""
    return f"{scenario}, {load.connections}x{load.streams}"


@dataclass(frozen=True)
class Options:
    duration: float = 8.0
    warmup: float = 2.0
    connections: int = 4
    streams: int = 16
    # a second, wider shape for the anchor, GetOrder and CreateOrder: many clients' worth of
    # calls in flight (a shop's busy hour), where per-call cost decides the rate
    wide_connections: int = 16
    wide_streams: int = 16
    rest_connections: int = 64
    watchers: int = 2000
    watcher_connections: int = 20
    lag_orders: int = 200
    profile_seconds: float = 6.0
    # backend name -> PostgreSQL server URL (None for SQLite)
    backends: dict[str, str | None] = field(default_factory=lambda: {"sqlite": None})

    @property
    def grpc_load(self) -> Load:
        return Load(self.connections, self.streams)

    @property
    def rest_load(self) -> Load:
        return Load(self.rest_connections)

    @property
    def wide_load(self) -> Load | None:
        """The wide shape, or None where it is the main shape already."""
        load = Load(self.wide_connections, self.wide_streams)
        return None if load == self.grpc_load else load


def alternation(loads: int) -> tuple[int, ...]:
    """The order of the rounds of loads measured together (0: the first, ...): forth and
    back, twice (A B B A A B B A; A B C C B A A B C C B A), so that every load's rounds
    sit at the same mean time and a steady drift in the machine's other load falls on
    all alike."""
    forth = tuple(range(loads))
    return (forth + forth[::-1]) * (ROUNDS_EACH // 2)


@dataclass(frozen=True)
class Alternated:
    """One of the loads measured in alternating rounds (Suite._measure_alternating)."""

    scenario: str
    caller: str
    # the gRPC method path it calls, by which Envoy's access log tells its errors apart
    method: str
    go: Callable[[float], LoadResult]
    # the processes it is metered on, and the access log of the Envoy it goes through
    meter: ProcessMeter
    log: AccessLog


@dataclass
class Measurement:
    scenario: str
    target: str  # "echo" or the database backend
    tool: str
    in_flight: int
    rate: float | None
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: dict[str, int]
    # CPU seconds each process spent per 1,000 calls
    cpu_per_1k: dict[str, float]
    # rps relative to the echo through Envoy of the same run (the scenario anchor names)
    ratio: float | None = None
    anchor: str = ANCHOR
    # who called: a customer or an operator with their token, or anyone without one
    caller: str = ""


@dataclass(frozen=True)
class Anchor:
    """The echo behind the mesh's Envoy (mutual TLS upstream), and behind a second Envoy
    whose upstreams are plaintext."""

    mesh: Mesh
    # the echo's mutual TLS address (Envoy's upstream), and its plaintext one
    echo: str
    echo_plaintext: str
    plaintext_envoy: PlaintextEnvoy


@dataclass
class Results:
    options: dict
    machine: dict = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    fan_out: dict[str, FanOut] = field(default_factory=dict)
    lag: dict[str, list[Lag]] = field(default_factory=dict)
    profile: dict[str, list[Hotspot]] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return (
            sum(m.errors for m in self.measurements)
            + sum(f.missed for f in self.fan_out.values())
            + sum(lag.missing for lags in self.lag.values() for lag in lags)
        )

    def as_dict(self) -> dict:
        return {
            "options": self.options,
            "machine": self.machine,
            "errors": self.errors,
            "measurements": [asdict(m) for m in self.measurements],
            "watch_fan_out": {k: asdict(v) for k, v in self.fan_out.items()},
            "notification_lag": {k: [asdict(lag) for lag in v] for k, v in self.lag.items()},
            "profile": {k: [asdict(h) for h in v] for k, v in self.profile.items()},
        }


class Suite:
    def __init__(self, options: Options, workdir: Path, say: Callable[[str], None] = print) -> None:
        self.options = options
        self.workdir = workdir
        self.say = say
        self.results = Results(options={**asdict(options), "backends": list(options.backends)}, machine=describe())

    def run(self) -> Results:
        # Each mesh verifies tokens with the development key made in its own data directory,
        # never with keys the caller's environment names (SHOPMESH_JWKS_FILE / _URL).
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SMTP_", "SHOPMESH_JWKS_"))}
        with self._anchor(base) as anchor:
            self._anchor_scenarios(anchor)
        sink = SmtpSink().start()
        try:
            for backend, pg_url in self.options.backends.items():
                with self._shopmesh(base, sink, backend, pg_url) as mesh:
                    self._shopmesh_scenarios(mesh, backend, sink)
        finally:
            sink.stop()
        return self.results

    # ------------------------------------------------------------ meshes

    @contextlib.contextmanager
    def _anchor(self, base: dict) -> Iterator[Anchor]:
        run_dir = self.workdir / "anchor"
        # its Envoy's signing key, certificate and the mesh CA are made in the run's work directory
        layout = Layout.on_free_ports({**base, **UNLIMITED, "SHOPMESH_DATA_DIR": str(run_dir / "data")})
        echo = layout.address("ORDERS_LISTEN")
        plaintext = _free_address(layout.env.values())
        layout = Layout.from_env({**layout.env, **{f"{s.upper()}_UPSTREAM": echo for s in SERVICES}})
        mesh = Mesh(layout, run_dir)
        try:
            # the mesh CA and Envoy's identity exist now (Mesh made them): the echo's is signed by that CA
            tls = echo_identity(layout.mesh_identity)
            self.say(
                f"starting the echo anchor on {echo} (mutual TLS; plaintext on {plaintext}) "
                f"and its Envoy on {layout.public}"
            )
            mesh.start_process(
                ECHO,
                [sys.executable, "-m", "bench.echo", echo, str(tls.cert), str(tls.key), str(tls.ca), plaintext],
                echo,
                identity=ECHO,
            )
            mesh.start_envoy()
            with plaintext_upstream_envoy(mesh, plaintext) as envoy:
                self.say(f"  and an Envoy with plaintext upstreams to it on {envoy.public}")
                yield Anchor(mesh, echo, plaintext, envoy)
        finally:
            mesh.stop()

    @contextlib.contextmanager
    def _shopmesh(self, base: dict, sink: SmtpSink, backend: str, pg_url: str | None) -> Iterator[Mesh]:
        data = self.workdir / backend
        env = {**base, **UNLIMITED, **sink.env, "SHOPMESH_DATA_DIR": str(data)}
        server = PostgresServer(pg_url) if pg_url else None
        created = []
        try:
            if server:
                for service in SERVICES:
                    created.append(url := server.create_database(f"bench_{service}"))
                    env[f"{service.upper()}_DATABASE_URL"] = url
            self.say(f"starting ShopMesh on {backend}")
            with Mesh(Layout.on_free_ports(env), data / "run") as mesh:
                yield mesh
        finally:
            if server:
                for url in created:
                    server.drop_database(url)
                server.close()

    # ------------------------------------------------------------ scenarios

    def _anchor_scenarios(self, anchor: Anchor) -> None:
        mesh = anchor.mesh
        body = self._body("get", orders_pb2.GetOrderRequest(order_id="ECHO-1"))
        product = self._body("product", inventory_pb2.GetProductRequest(product_id="ECHO-1"))
        # the request ShopMesh's GetOrder gets below: a customer's, with their token
        customer = _bearer(_token(mesh, CUSTOMER, AS_CUSTOMER))
        echo_pid = mesh.processes[ECHO].pid
        meter = ProcessMeter({"envoy": mesh.processes["envoy"].pid, ECHO: echo_pid})
        # the columns of the plaintext-upstream Envoy's calls are its own process's
        plaintext_meter = ProcessMeter({"envoy": anchor.plaintext_envoy.process.pid, ECHO: echo_pid})
        direct = ProcessMeter({ECHO: echo_pid})
        public, plaintext_public = mesh.layout.public, anchor.plaintext_envoy.public
        log = _access_log(mesh)
        plaintext_log = AccessLog(anchor.plaintext_envoy.access_log, plaintext_public)
        grpc_load = self.options.grpc_load
        # plaintext (h2c): h2load cannot present the client certificate of the TLS port;
        # the same headers as through Envoy, which the echo ignores
        self._measure(
            DIRECT,
            ECHO,
            grpc_load,
            direct,
            None,
            AS_CUSTOMER,
            lambda s: loadgen.h2load(f"http://{anchor.echo_plaintext}{GET_PATH}", body, grpc_load, s, customer),
        )
        # The anchor, the same load without a token on a method anyone may call, and the anchor's
        # load through the Envoy with plaintext upstreams, in alternating rounds: Envoy's CPU
        # per call differs from the anchor's by the token check in the second, by mutual TLS
        # (Envoy's and the echo's CPU) in the third. Envoy sets no jwt_cache_config, so it
        # verifies the signature of every call: one customer's token costs it what many
        # customers' tokens would. Connections are long-lived (h2load's and Envoy's to the echo
        # alike): the TLS handshake is paid once per connection, the rest per call.
        self._measure_alternating(
            ECHO,
            grpc_load,
            (
                Alternated(
                    ANCHOR,
                    AS_CUSTOMER,
                    GET_PATH,
                    lambda s: loadgen.h2load(f"http://{public}{GET_PATH}", body, grpc_load, s, customer),
                    meter,
                    log,
                ),
                Alternated(
                    ANONYMOUS,
                    AS_ANYONE,
                    PRODUCT_PATH,
                    lambda s: loadgen.h2load(f"http://{public}{PRODUCT_PATH}", product, grpc_load, s),
                    meter,
                    log,
                ),
                Alternated(
                    PLAINTEXT_UPSTREAM,
                    AS_CUSTOMER,
                    GET_PATH,
                    lambda s: loadgen.h2load(f"http://{plaintext_public}{GET_PATH}", body, grpc_load, s, customer),
                    plaintext_meter,
                    plaintext_log,
                ),
            ),
        )
        rest = self.options.rest_load
        self._measure(
            "echo REST via Envoy",
            ECHO,
            rest,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.wrk(f"http://{public}/v1/orders/ECHO-1", "GET", "", rest, s, customer),
        )
        if wide_load := self.options.wide_load:
            self._measure_wide(
                ANCHOR,
                ECHO,
                wide_load,
                meter,
                log,
                lambda s: loadgen.h2load(f"http://{public}{GET_PATH}", body, wide_load, s, customer),
            )

    def _shopmesh_scenarios(self, mesh: Mesh, backend: str, sink: SmtpSink) -> None:
        public = mesh.layout.public
        meter = _meter(mesh)
        log = _access_log(mesh)
        grpc_load = self.options.grpc_load
        # Who calls, as in a shop: its load is its customers', so every order call below is a
        # customer's, with their own token, on their own orders: placing orders, reading one
        # (GetOrder, the hot path: an order's page reloaded), listing theirs, watching one. An
        # operator (staff) only fills the catalogue and confirms the watched order.
        operator_token = _token(mesh, OPERATOR, AS_OPERATOR)
        customer_token = _token(mesh, CUSTOMER, AS_CUSTOMER)
        customer = _bearer(customer_token)
        with client.channel(public, operator_token) as channel:
            _create_product(channel)
        with client.channel(public, customer_token) as channel:
            orders = orders_pb2_grpc.OrderServiceStub(channel)
            first = orders.CreateOrder(_new_order(), timeout=10)
            watched = orders.CreateOrder(_new_order(), timeout=10)
            # a long order history, so that ListOrders reads a full page of the customer's own
            for _ in range(LIST_PAGE - 2):
                orders.CreateOrder(_new_order(), timeout=10)

        self.say(
            f"  notification lag: {LAG_ALONE} orders one at a time, then {self.options.lag_orders}, "
            f"{LAG_BURST} at a time"
        )

        def token_for(email: str) -> str:
            return _token(mesh, email, AS_CUSTOMER)

        lag_orders = self.options.lag_orders
        self.results.lag[backend] = [
            asyncio.run(notification_lag(public, sink, PRODUCT_ID, LAG_ALONE, 1, token_for)),
            asyncio.run(notification_lag(public, sink, PRODUCT_ID, lag_orders, LAG_BURST, token_for)),
        ]

        get = self._body("get", orders_pb2.GetOrderRequest(order_id=first.order_id))
        self._measure(
            "GetOrder gRPC",
            backend,
            grpc_load,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.h2load(f"http://{public}{GET_PATH}", get, grpc_load, s, customer),
        )
        wide_load = self.options.wide_load
        if wide_load:
            self._measure_wide(
                "GetOrder gRPC",
                backend,
                wide_load,
                meter,
                log,
                lambda s: loadgen.h2load(f"http://{public}{GET_PATH}", get, wide_load, s, customer),
            )
        # no customer_email: a customer's list is their own
        page = self._body("list", orders_pb2.ListOrdersRequest(page_size=LIST_PAGE))
        self._measure(
            f"ListOrders gRPC ({LIST_PAGE})",
            backend,
            grpc_load,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.h2load(f"http://{public}{LIST_PATH}", page, grpc_load, s, customer),
        )

        self.say(f"  {self.options.watchers} watchers of one order")
        self.results.fan_out[backend] = asyncio.run(
            fan_out(
                public,
                watched.order_id,
                self.options.watchers,
                self.options.watcher_connections,
                lambda: meter.rss_mb("orders"),
                watcher_token=customer_token,
                operator_token=operator_token,
            )
        )

        create = self._body("create", _new_order())
        created = self._measure(
            "CreateOrder gRPC",
            backend,
            grpc_load,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.h2load(f"http://{public}{CREATE_PATH}", create, grpc_load, s, customer),
        )
        if wide_load:
            self._measure_wide(
                "CreateOrder gRPC",
                backend,
                wide_load,
                meter,
                log,
                lambda s: loadgen.h2load(f"http://{public}{CREATE_PATH}", create, wide_load, s, customer),
            )
        rest = self.options.rest_load
        rest_body = json.dumps({"customerEmail": CUSTOMER, "items": [{"productId": PRODUCT_ID, "quantity": 1}]})
        self._measure(
            "CreateOrder REST",
            backend,
            rest,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.wrk(f"http://{public}/v1/orders", "POST", rest_body, rest, s, customer),
        )
        half = Load(grpc_load.connections, grpc_load.streams, rate=max(1.0, created.rps / 2))
        self._measure(
            "CreateOrder gRPC at half rate",
            backend,
            half,
            meter,
            log,
            AS_CUSTOMER,
            lambda s: loadgen.h2load(f"http://{public}{CREATE_PATH}", create, half, s, customer),
        )

        self.say(f"  profiling orders for {self.options.profile_seconds:g} s of CreateOrder")
        output = self.workdir / f"profile-{backend}.txt"
        recorder = profile.start(mesh.processes["orders"].pid, self.options.profile_seconds, output)
        loadgen.h2load(f"http://{public}{CREATE_PATH}", create, grpc_load, self.options.profile_seconds, customer)
        self.results.profile[backend] = profile.finish(recorder, output)

    def _measure(
        self,
        scenario: str,
        target: str,
        load: Load,
        meter: ProcessMeter,
        log: AccessLog | None,
        caller: str,
        go: Callable[[float], LoadResult],
    ) -> Measurement:
        """A warm-up run, then the measured one; errors of both count."""
        self._announce(scenario, target, load)
        mark = log.mark() if log else 0
        warm = go(self.options.warmup)
        before = meter.cpu_seconds()
        result = go(self.options.duration)
        cpu = meter.cpu_since(before)
        failures = log.failures_since(mark) if log else Counter()
        return self._record(scenario, target, load, caller, [warm, result], result, cpu, failures)

    def _measure_wide(
        self,
        scenario: str,
        target: str,
        load: Load,
        meter: ProcessMeter,
        log: AccessLog,
        go: Callable[[float], LoadResult],
    ) -> Measurement:
        """scenario again at the wide shape, its ratio to the anchor's at that shape."""
        measured = self._measure(wide(scenario, load), target, load, meter, log, AS_CUSTOMER, go)
        measured.anchor = wide(ANCHOR, load)
        return measured

    def _measure_alternating(self, target: str, load: Load, loads: tuple[Alternated, ...]) -> list[Measurement]:
        """Loads (h2load) whose differences are the figures: each warmed up, then measured in
        alternating rounds (alternation(), each round 1/ROUNDS_EACH of --duration, so each
        load still runs --duration in all), so that a change in the machine's other work
        falls on all alike. Errors are told apart by the Envoy's access log and the method
        called: two loads through one Envoy must call different methods."""
        if len({(id(each.log), each.method) for each in loads}) != len(loads):
            raise ValueError("two loads through one Envoy call the same method: their errors would mix")
        for each in loads:
            self._announce(each.scenario, target, load)
        logs = list(dict.fromkeys(each.log for each in loads))
        marks = {log: log.mark() for log in logs}
        warm = [each.go(self.options.warmup) for each in loads]
        runs: list[list[LoadResult]] = [[] for _ in loads]
        cpu: list[defaultdict[str, float]] = [defaultdict(float) for _ in loads]
        for side in alternation(len(loads)):
            meter = loads[side].meter
            before = meter.cpu_seconds()
            runs[side].append(loads[side].go(self.options.duration / ROUNDS_EACH))
            for name, seconds in meter.cpu_since(before).items():
                cpu[side][name] += seconds
        by_log = {log: log.failures_by_method_since(marks[log]) for log in logs}
        failures = [by_log[each.log].pop(each.method, Counter()) for each in loads]
        # a failure logged under another path (none is expected) is never dropped: it counts
        # for the first load through that Envoy
        for log, rest in by_log.items():
            first = next(side for side, each in enumerate(loads) if each.log is log)
            failures[first] += sum(rest.values(), Counter())
        return [
            self._record(
                each.scenario,
                target,
                load,
                each.caller,
                [warm[side], *runs[side]],
                loadgen.combined(runs[side]),
                cpu[side],
                failures[side],
            )
            for side, each in enumerate(loads)
        ]

    def _announce(self, scenario: str, target: str, load: Load) -> None:
        self.say(
            f"  {scenario} on {target}: {load.in_flight} in flight" + (f" at {load.rate:.0f}/s" if load.rate else "")
        )

    def _record(
        self,
        scenario: str,
        target: str,
        load: Load,
        caller: str,
        runs: list[LoadResult],
        result: LoadResult,
        cpu: dict[str, float],
        failures: Counter,
    ) -> Measurement:
        """The measurement of result (the measured run), with the errors of every run
        (warm-up included) that Envoy logged (failures) or the client saw."""
        client_failures = sum(run.failed for run in runs)
        if client_failures:
            failures[f"{result.tool} failures"] += client_failures
        calls = max(result.succeeded, 1)
        measurement = Measurement(
            scenario,
            target,
            result.tool,
            load.in_flight,
            load.rate,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            sum(failures.values()),
            dict(failures),
            {name: 1000 * seconds / calls for name, seconds in cpu.items()},
            caller=caller,
        )
        self.results.measurements.append(measurement)
        return measurement

    def _body(self, name: str, message) -> Path:
        path = self.workdir / f"{name}.grpc"
        path.write_bytes(loadgen.grpc_frame(message))
        return path


def _free_address(taken: Iterable[str]) -> str:
    """A free loopback address that is none of taken (a layout's, chosen but not bound yet)."""
    while (address := f"127.0.0.1:{free_port()}") in taken:
        pass
    return address


def _meter(mesh: Mesh) -> ProcessMeter:
    return ProcessMeter({name: process.pid for name, process in mesh.processes.items()})


def _access_log(mesh: Mesh) -> AccessLog:
    return AccessLog(mesh.run_dir / "envoy-access.log", mesh.layout.public)


def _token(mesh: Mesh, email: str, role: str) -> str:
    """A bearer token of mesh's Envoy for email with role, valid for the whole run."""
    ttl = min(TOKEN_TTL_SECONDS, envoy_config.params_from_env(mesh.layout.env).jwt_max_lifetime)
    return mesh.token(email, (role,), ttl)


def _bearer(token: str) -> dict[str, str]:
    """The header that carries token on a load generator's every call."""
    return {"authorization": f"Bearer {token}"}


def _create_product(channel: grpc.Channel) -> None:
    inventory_pb2_grpc.InventoryServiceStub(channel).CreateProduct(
        inventory_pb2.CreateProductRequest(
            product=inventory_pb2.Product(
                product_id=PRODUCT_ID,
                title="Benchmark product",
                price=money_pb2.Money(currency_code="EUR", units=1),
                available=10**12,
            )
        ),
        timeout=10,
    )


def _new_order() -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        customer_email=CUSTOMER, items=[orders_pb2.OrderItemRequest(product_id=PRODUCT_ID, quantity=1)]
    )
