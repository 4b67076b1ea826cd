"""The scale table for people: one line per figure and backend, a column per size, and
each size's cost against the smallest size's, so that a cost growing with the data
shows at a glance; the same in JSON."""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeGuard

from bench.report import _markdown, _without_nan
from bench.scale import CALLS, BackendScale, Drain, ScaleResults

# a share of a core above this, over a drain or a catch-up, makes that process the likely limit
BUSY_SHARE = 0.8


@dataclass(frozen=True)
class Line:
    """One figure of one backend at each size (None where it was not measured)."""

    backend: str
    figure: str
    values: list[float | None]
    # calls/s and events/s: higher is better, and their cost is their inverse
    higher_is_better: bool
    # digits after the point
    digits: int = 0

    @property
    def growth(self) -> list[float | None]:
        return growth(self.values, self.higher_is_better)


def growth(values: list[float | None], higher_is_better: bool) -> list[float | None]:
    """Each value's cost over the first one's (x1.00 for the first; above 1: dearer). The
    cost of a rate is its inverse (time per call); any other figure is a cost itself.
    None where either is missing, zero or not a number."""
    first = values[0] if values else None
    factors: list[float | None] = []
    for value in values:
        if not _usable(first) or not _usable(value):
            factors.append(None)
        else:
            factors.append(first / value if higher_is_better else value / first)
    return factors


def growth_text(factors: list[float | None]) -> str:
    """ "x1.00, x1.05, x1.31"; "" when there is nothing to compare."""
    if sum(factor is not None for factor in factors) < 2:
        return ""
    return ", ".join("—" if factor is None else f"x{factor:.2f}" for factor in factors)


def _usable(value: float | None) -> TypeGuard[float]:
    return value is not None and not math.isnan(value) and value > 0


def lines(results: ScaleResults) -> list[Line]:
    found: list[Line] = []
    for backend, measured in results.backends.items():
        sizes = measured.sizes
        for call in CALLS:
            rates = [at.calls.get(call) for at in sizes]
            name = f"{call} (first page of 50)" if call == "ListOrders" else call
            found.append(Line(backend, f"{name} calls/s", [None if r is None else r.rps for r in rates], True))
            found.append(Line(backend, f"{name} p50 ms", [None if r is None else r.p50_ms for r in rates], False, 2))
            found.append(Line(backend, f"{name} p99 ms", [None if r is None else r.p99_ms for r in rates], False, 2))
        found.append(
            Line(
                backend,
                "StreamOrderEvents catch-up from 0, events/s",
                [at.catch_up.events_per_second for at in sizes],
                True,
            )
        )
        watchers = results.options.get("watchers", 0)
        found.append(
            Line(
                backend,
                f"WatchOrder orders RSS per idle stream, KB ({watchers:,} streams)",
                [_kb_per_stream(at.fan_out) for at in sizes],
                False,
                1,
            )
        )
        found.append(
            Line(backend, f"WatchOrder all {watchers:,} notified, ms", [at.fan_out.all_ms for at in sizes], False)
        )
        found.append(
            Line(
                backend,
                "WatchOrder: Order service unroutable in Envoy (health checks missed), s",
                [at.unroutable_seconds for at in sizes],
                False,
                1,
            )
        )
        if measured.drain:
            drain = measured.drain
            found.append(
                Line(
                    backend,
                    f"Notifications: {drain.emails:,} unsent emails drained, s",
                    [None] * (len(sizes) - 1) + [drain.seconds],
                    False,
                    1,
                )
            )
    return found


def _kb_per_stream(fan) -> float:
    return (fan.rss_watched_mb - fan.rss_idle_mb) * 1024 / fan.watchers if fan.watchers else math.nan


def table(results: ScaleResults) -> str:
    sizes = [f"{size:,}" for size in results.options["sizes"]]
    rows = [["backend", "figure", *sizes, "cost growth (x smallest)"]]
    for line in lines(results):
        cells = ["" if value is None else _figure(value, line.digits) for value in line.values]
        cells += [""] * (len(sizes) - len(cells))
        rows.append([line.backend, line.figure, *cells, growth_text(line.growth)])
    options = results.options
    text = [
        f"Scale table: how cost grows with the orders stored ({', '.join(sizes)}; fresh databases each, "
        f"pre-filled by bench/loader.py). Calls: h2load, {options['connections']} connections x "
        f"{options['streams']} streams, {options['duration']:g} s each after {options['warmup']:g} s warm-up. "
        "Cost growth: each size's cost over the smallest size's (a rate's cost is its inverse); above x1.00 is dearer.",
        _markdown(rows),
    ]
    for backend, measured in results.backends.items():
        text += _notes(backend, measured)
    text.append(headline(results))
    text.append(
        f"Scale table run time: {_duration(results.seconds)} in all ({_duration(results.load_seconds)} of it loading)"
    )
    return "\n".join(text)


def _notes(backend: str, measured: BackendScale) -> list[str]:
    notes = []
    for at in measured.sizes:
        load = at.load
        notes.append(
            f"Loader ({backend}, {at.orders:,} orders): {load.rows:,} rows in {load.seconds:.1f} s, "
            f"{load.rows_per_second:,.0f} rows/s ({load.method})"
            + (f", then VACUUM ANALYZE {load.settle_seconds:.1f} s" if load.settle_seconds else "")
        )
    for at in measured.sizes:
        catch_up = at.catch_up
        reader = _share(catch_up.reader_cpu_seconds, catch_up.seconds)
        cpu = ", ".join(
            f"{name} {_share(seconds, catch_up.seconds):.0%}"
            for name, seconds in sorted(catch_up.cpu_seconds.items())
            if name in ("orders", "envoy")
        )
        notes.append(
            f"Catch-up ({backend}, {at.orders:,}): {catch_up.read:,} of {catch_up.expected:,} events in "
            f"{catch_up.seconds:.1f} s; CPU of a core: reader {reader:.0%}, {cpu}"
        )
    for at in measured.sizes:
        if at.unroutable_seconds:
            notes.append(
                f"Fan-out ({backend}, {at.orders:,}): Envoy routed to no Order service "
                f"for {at.unroutable_seconds:.1f} s "
                f"({', '.join(at.unroutable_clusters)}) as {at.fan_out.watchers:,} watchers were notified and closed: "
                "its health checks went unanswered, and every call to it failed meanwhile (no_healthy_upstream)"
            )
    drain = measured.drain
    if drain:
        sink = _share(drain.sink_cpu_seconds, drain.seconds)
        service = _share(drain.notifications_cpu_seconds, drain.seconds)
        notes.append(
            f"Backlog ({backend}): {drain.received:,} of {drain.emails:,} emails in {drain.seconds:.1f} s from the "
            f"Notification service's start ({drain.emails_per_second:,.0f}/s; first to last "
            f"{drain.sending_seconds:.1f} s), {drain.duplicates} twice; CPU of a core: Notification service "
            f"{service:.0%}, SMTP sink {sink:.0%} ({1000 / drain.sink_capacity_per_second:.2f} ms per email: "
            f"{drain.sink_capacity_per_second:,.0f}/s with a core of its own): {sink_verdict(drain)}; "
            "backlog loaded at "
            f"{drain.load.rows_per_second:,.0f} rows/s ({drain.load.method})"
        )
    return notes


def sink_verdict(drain: Drain) -> str:
    """Whether the SMTP sink, rather than the Notification service, set the drain's pace:
    busy most of the drain's time, which is taking emails nearly as fast as it can at all."""
    if _share(drain.sink_cpu_seconds, drain.seconds) >= BUSY_SHARE:
        return "the sink may be the limit"
    return "the sink is not the limit"


def headline(results: ScaleResults) -> str:
    if results.errors:
        return f"FAILED: {results.errors} calls, events or emails failed or went missing; the figures are not valid"
    return "No call failed, no event or email went missing."


def write_json(results: ScaleResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"scale": results.as_dict()}
    document["scale"]["lines"] = [{**asdict(line), "growth": line.growth} for line in lines(results)]
    path.write_text(json.dumps(_without_nan(document), indent=2) + "\n")


def _figure(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _share(seconds: float, of: float) -> float:
    return seconds / of if of else math.nan


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
