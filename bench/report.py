"""The benchmark's results for people: a table on the terminal, JSON and a PNG chart."""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.anchor import ECHO
from bench.suite import ANCHOR, ANONYMOUS, DIRECT, PLAINTEXT_UPSTREAM, Results

PROCESS_ORDER = ("envoy", "orders", "inventory", "notifications", ECHO)


@dataclass(frozen=True)
class Target:
    """A goal ShopMesh aims at, and where this run landed."""

    backend: str
    name: str
    value: float
    goal: float
    higher_is_better: bool

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value < self.goal


@dataclass(frozen=True)
class TokenCheck:
    """What Envoy's token check (jwt_authn verifying the bearer JWT, then rbac judging its
    role) costs per call: the echo anchor through Envoy on GetOrder with a customer's token,
    against the same load on GetProduct, which anyone may call, without one."""

    envoy_us_with_token: float
    envoy_us_anonymous: float
    # the difference of the two: the check's cost
    envoy_us_per_call: float
    rps_with_token: float
    rps_anonymous: float
    # throughput with the check against without, in percent (negative: it costs)
    rps_change_percent: float
    # backend -> the check's cost as a share of GetOrder's CPU per call (Envoy + orders), percent
    get_order_share_percent: dict[str, float]


def get_order_shares(results: Results, us_per_call: float) -> dict[str, float]:
    """backend -> us_per_call as a share (percent) of GetOrder's CPU per call, Envoy + orders."""
    shares = {}
    for backend in results.options["backends"]:
        get = next((m for m in results.measurements if m.target == backend and m.scenario == "GetOrder gRPC"), None)
        if get is not None:
            per_call = 1000 * sum(get.cpu_per_1k.get(name, 0.0) for name in ("envoy", "orders"))
            shares[backend] = 100 * us_per_call / per_call if per_call else math.nan
    return shares


def token_check(results: Results) -> TokenCheck | None:
    """From the anchor and its anonymous twin of the same run; None if either is missing."""
    echo = {m.scenario: m for m in results.measurements if m.target == ECHO}
    with_token, anonymous = echo.get(ANCHOR), echo.get(ANONYMOUS)
    if with_token is None or anonymous is None:
        return None
    if "envoy" not in with_token.cpu_per_1k or "envoy" not in anonymous.cpu_per_1k:
        return None
    # CPU seconds per 1,000 calls -> microseconds per call
    us_with, us_anonymous = 1000 * with_token.cpu_per_1k["envoy"], 1000 * anonymous.cpu_per_1k["envoy"]
    cost = us_with - us_anonymous
    shares = get_order_shares(results, cost)
    change = 100 * (with_token.rps / anonymous.rps - 1) if anonymous.rps else math.nan
    return TokenCheck(us_with, us_anonymous, cost, with_token.rps, anonymous.rps, change, shares)


@dataclass(frozen=True)
class MtlsCost:
    """What mutual TLS between Envoy and a service costs per call: the anchor (Envoy calls
    the echo over mutual TLS, as it calls every ShopMesh service) against the same load
    through an Envoy of the same config whose service clusters speak plaintext to the
    echo's plaintext port, measured in alternating rounds of the same run. Connections are
    long-lived HTTP/2: the handshake is paid once per connection, the per-call cost is
    encrypting and decrypting records, at both ends of the hop."""

    # CPU microseconds per call of Envoy and the echo together, with and without mutual TLS
    us_with: float
    us_without: float
    # the difference of the two: mutual TLS's cost per call and hop
    us_per_call: float
    # apart: Envoy's (the client end) and the echo's (the server end)
    envoy_us_with: float
    envoy_us_without: float
    echo_us_with: float
    echo_us_without: float
    rps_with: float
    rps_without: float
    # throughput with mutual TLS against without, in percent (negative: it costs)
    rps_change_percent: float
    # backend -> the cost of one hop as a share of GetOrder's CPU per call (Envoy + orders),
    # whose one hop inside the mesh (Envoy to orders) is what the anchor's is; percent
    get_order_share_percent: dict[str, float]


def mtls_cost(results: Results) -> MtlsCost | None:
    """From the anchor and its plaintext-upstream twin of the same run; None if either is missing."""
    echo = {m.scenario: m for m in results.measurements if m.target == ECHO}
    with_tls, without = echo.get(ANCHOR), echo.get(PLAINTEXT_UPSTREAM)
    if with_tls is None or without is None:
        return None
    if any(name not in m.cpu_per_1k for m in (with_tls, without) for name in ("envoy", ECHO)):
        return None
    # CPU seconds per 1,000 calls -> microseconds per call
    envoy_with, envoy_without = 1000 * with_tls.cpu_per_1k["envoy"], 1000 * without.cpu_per_1k["envoy"]
    echo_with, echo_without = 1000 * with_tls.cpu_per_1k[ECHO], 1000 * without.cpu_per_1k[ECHO]
    us_with, us_without = envoy_with + echo_with, envoy_without + echo_without
    cost = us_with - us_without
    shares = get_order_shares(results, cost)
    change = 100 * (with_tls.rps / without.rps - 1) if without.rps else math.nan
    return MtlsCost(
        us_with,
        us_without,
        cost,
        envoy_with,
        envoy_without,
        echo_with,
        echo_without,
        with_tls.rps,
        without.rps,
        change,
        shares,
    )


def targets(results: Results) -> list[Target]:
    """The goals, as ratios to the anchor of the same run where a ratio makes sense."""
    found: list[Target] = []
    for backend in results.options["backends"]:
        by_name = {m.scenario: m for m in results.measurements if m.target == backend}
        create = by_name.get("CreateOrder gRPC")
        rest, half = by_name.get("CreateOrder REST"), by_name.get("CreateOrder gRPC at half rate")
        # at the main shape, and at the wide one where it was measured (its anchor names it)
        for call, goal in (("GetOrder", 0.60), ("CreateOrder", 0.25)):
            for measured in by_name.values():
                shape = measured.anchor.removeprefix(ANCHOR)
                if measured.scenario == f"{call} gRPC{shape}" and measured.ratio is not None:
                    found.append(Target(backend, f"{call} rps / echo via Envoy{shape}", measured.ratio, goal, True))
        if create and rest and create.rps:
            found.append(Target(backend, "REST CreateOrder rps / gRPC CreateOrder", rest.rps / create.rps, 0.9, True))
        if half:
            found.append(Target(backend, "CreateOrder p99 at half its max rate (ms)", half.p99_ms, 25.0, False))
        fan = results.fan_out.get(backend)
        if fan:
            found.append(
                Target(backend, f"orders RSS with {fan.watchers} watchers (MB)", fan.rss_watched_mb, 150.0, False)
            )
            found.append(Target(backend, f"all {fan.watchers} watchers notified (ms)", fan.all_ms, 500.0, False))
    return found


def add_ratios(results: Results) -> None:
    """Each measurement's rps as a fraction of the echo through Envoy of the same run, at
    the same shape (the scenario its anchor names)."""
    anchors = {m.scenario: m.rps for m in results.measurements if m.target == ECHO}
    for measurement in results.measurements:
        anchor = anchors.get(measurement.anchor)
        measurement.ratio = measurement.rps / anchor if anchor else None


def table(results: Results) -> str:
    processes = [p for p in PROCESS_ORDER if any(p in m.cpu_per_1k for m in results.measurements)]
    header = ["scenario", "target", "caller", "tool", "in flight", "RPS", "p50 ms", "p99 ms", "errors", "x echo"]
    header += [f"CPU s/1k {p}" for p in processes]
    rows = [header]
    for m in results.measurements:
        in_flight = f"{m.in_flight}" + (f" @{m.rate:.0f}/s" if m.rate else "")
        row = [
            m.scenario,
            m.target,
            m.caller,
            m.tool,
            in_flight,
            f"{m.rps:,.0f}",
            f"{m.p50_ms:.2f}",
            f"{m.p99_ms:.2f}",
            str(m.errors),
            "" if m.ratio is None else f"{m.ratio:.2f}",
        ]
        row += [_cpu(m.cpu_per_1k.get(p)) for p in processes]
        rows.append(row)
    machine = results.machine
    lines = []
    if machine:
        lines.append(
            f"{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
            f"SQLite {machine['sqlite']}, Envoy {machine['envoy']}, h2load {machine['h2load']}, wrk {machine['wrk']}\n"
        )
    lines.append(_markdown(rows))
    if any(m.scenario == DIRECT for m in results.measurements):
        lines.append(DIRECT_NOTE)
    check = token_check(results)
    if check:
        lines.append(token_check_line(check))
    cost = mtls_cost(results)
    if cost:
        lines.append(mtls_cost_line(cost))
    for backend, fan in results.fan_out.items():
        lines.append(
            f"WatchOrder fan-out ({backend}, grpc.aio): {fan.watchers} watchers on {fan.connections} connections; "
            f"all notified in {fan.all_ms:.0f} ms (first {fan.first_ms:.0f}, median {fan.median_ms:.0f}), "
            f"missed {fan.missed}; orders RSS {fan.rss_idle_mb:.0f} MB idle, {fan.rss_watched_mb:.0f} MB watched"
        )
    for backend, lags in results.lag.items():
        for lag in lags:
            lines.append(
                f"Notification lag ({backend}, grpc.aio), commit to SMTP accept, {lag.orders} orders "
                f"{lag.in_flight} at a time: "
                f"p50 {lag.p50_ms:.0f} ms, p99 {lag.p99_ms:.0f} ms, max {lag.max_ms:.0f} ms, missing {lag.missing}"
            )
    goals = targets(results)
    if goals:
        lines.append("\nTargets:")
        lines.append(
            _markdown(
                [["backend", "target", "this run", "goal", "met"]]
                + [
                    [
                        t.backend,
                        t.name,
                        f"{t.value:.2f}",
                        ("≥ " if t.higher_is_better else "< ") + f"{t.goal:g}",
                        "yes" if t.met else "no",
                    ]
                    for t in goals
                ]
            )
        )
    for backend, hotspots in results.profile.items():
        lines.append(f"\nHottest functions of orders under CreateOrder ({backend}, py-spy):")
        lines.append(
            _markdown(
                [["own %", "on stack %", "function"]]
                + [[f"{h.self_percent:.1f}", f"{h.total_percent:.1f}", h.function] for h in hotspots]
            )
        )
    return "\n".join(lines)


def token_check_line(check: TokenCheck) -> str:
    line = (
        f"JWT check cost (jwt_authn + rbac), Envoy CPU per call: {check.envoy_us_per_call:.0f} µs "
        f"(echo GetOrder with a customer's token {check.envoy_us_with_token:.0f} µs, "
        f"anonymous GetProduct {check.envoy_us_anonymous:.0f} µs); echo through Envoy "
        f"{check.rps_with_token:,.0f} calls/s with the check, {check.rps_anonymous:,.0f} without "
        f"({check.rps_change_percent:+.1f} %)"
    )
    for backend, share in check.get_order_share_percent.items():
        line += f"\n  GetOrder ({backend}): the check is {share:.1f} % of its CPU per call (Envoy + orders)"
    return line


DIRECT_NOTE = (
    f"{DIRECT}: h2c to the echo's second, plaintext port (the benchmark's only): h2load cannot present "
    "the client certificate that its mutual TLS port, Envoy's upstream, requires"
)


def mtls_cost_line(cost: MtlsCost) -> str:
    line = (
        f"mTLS cost (Envoy to echo, mutual TLS vs plaintext upstream), CPU per call, Envoy + echo: "
        f"{cost.us_per_call:.0f} µs ({cost.us_with:.0f} µs with mTLS = Envoy {cost.envoy_us_with:.0f} + echo "
        f"{cost.echo_us_with:.0f}; {cost.us_without:.0f} µs without = Envoy {cost.envoy_us_without:.0f} + echo "
        f"{cost.echo_us_without:.0f}); echo through Envoy {cost.rps_with:,.0f} calls/s with mTLS, "
        f"{cost.rps_without:,.0f} without ({cost.rps_change_percent:+.1f} %); long-lived HTTP/2 connections: "
        "the handshake is paid once per connection, the per-call cost is record encryption"
    )
    for backend, share in cost.get_order_share_percent.items():
        line += f"\n  GetOrder ({backend}): one mTLS hop is {share:.1f} % of its CPU per call (Envoy + orders)"
    return line


def headline(results: Results) -> str:
    if results.errors:
        return f"FAILED CALLS: {results.errors} calls failed in this run; its figures are not valid"
    return "No call failed in this run."


def write_json(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = results.as_dict()
    document["targets"] = [{**asdict(t), "met": t.met} for t in targets(results)]
    check = token_check(results)
    document["jwt_check"] = asdict(check) if check else None
    cost = mtls_cost(results)
    document["mtls_cost"] = asdict(cost) if cost else None
    path.write_text(json.dumps(_without_nan(document), indent=2) + "\n")


def write_chart(results: Results, path: Path) -> None:
    """Throughput and p99 per scenario, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    measurements = results.measurements
    labels = [f"{m.scenario}\n({m.target})" for m in measurements]
    colors = ["#8c8c8c" if m.target == ECHO else "#2b6cb0" for m in measurements]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(13, 0.5 * len(labels) + 1.8), sharey=True)
    positions = range(len(labels))
    left.barh(positions, [m.rps for m in measurements], color=colors)
    left.set_title("throughput (calls/s, higher is better)")
    right.barh(positions, [m.p99_ms for m in measurements], color=colors)
    right.set_title("p99 latency (ms, lower is better)")
    left.set_yticks(list(positions), labels, fontsize=8)
    left.invert_yaxis()
    for position, m in zip(positions, measurements, strict=True):
        ratio = "" if m.ratio is None or m.target == ECHO else f"  ({m.ratio:.2f} x echo)"
        left.text(m.rps, position, f" {m.rps:,.0f}{ratio}", va="center", fontsize=7)
        right.text(m.p99_ms, position, f" {m.p99_ms:.1f}", va="center", fontsize=7)
    for axis in (left, right):
        axis.grid(axis="x", alpha=0.3)
        axis.margins(x=0.25)
    title = f"ShopMesh benchmark: {headline(results)}"
    check = token_check(results)
    if check:
        title += (
            f"\nJWT check (jwt_authn + rbac): {check.envoy_us_per_call:.0f} µs Envoy CPU per call, "
            f"echo via Envoy {check.rps_change_percent:+.1f} % calls/s"
        )
    cost = mtls_cost(results)
    if cost:
        title += (
            f"\nmTLS Envoy to echo: {cost.us_per_call:.0f} µs CPU per call (Envoy + echo), "
            f"echo via Envoy {cost.rps_change_percent:+.1f} % calls/s"
        )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _cpu(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.3f}"


def _without_nan(value):
    """NaN (a figure that could not be taken) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def _markdown(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
