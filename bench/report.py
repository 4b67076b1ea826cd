"""The benchmark's results for people: a table on the terminal, JSON and a PNG chart."""

import json
import math
from pathlib import Path

from bench.suite import ECHO, Results

ANCHOR = "echo gRPC via Envoy"
PROCESS_ORDER = ("envoy", "orders", "inventory", "notifications", ECHO)


def add_ratios(results: Results) -> None:
    """Each measurement's rps as a fraction of the echo through Envoy of the same run."""
    anchor = next((m for m in results.measurements if m.scenario == ANCHOR), None)
    if anchor is None or not anchor.rps:
        return
    for measurement in results.measurements:
        measurement.ratio = measurement.rps / anchor.rps


def table(results: Results) -> str:
    processes = [p for p in PROCESS_ORDER if any(p in m.cpu_per_1k for m in results.measurements)]
    header = ["scenario", "target", "tool", "in flight", "RPS", "p50 ms", "p99 ms", "errors", "x echo"]
    header += [f"CPU s/1k {p}" for p in processes]
    rows = [header]
    for m in results.measurements:
        in_flight = f"{m.in_flight}" + (f" @{m.rate:.0f}/s" if m.rate else "")
        row = [m.scenario, m.target, m.tool, in_flight, f"{m.rps:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}",
               str(m.errors), "" if m.ratio is None else f"{m.ratio:.2f}"]
        row += [_cpu(m.cpu_per_1k.get(p)) for p in processes]
        rows.append(row)
    lines = [_markdown(rows)]
    for backend, fan in results.fan_out.items():
        lines.append(
            f"WatchOrder fan-out ({backend}): {fan.watchers} watchers on {fan.connections} connections; "
            f"all notified in {fan.all_ms:.0f} ms (first {fan.first_ms:.0f}, median {fan.median_ms:.0f}), "
            f"missed {fan.missed}; orders RSS {fan.rss_idle_mb:.0f} MB idle, {fan.rss_watched_mb:.0f} MB watched"
        )
    for backend, lag in results.lag.items():
        lines.append(
            f"Notification lag ({backend}), commit to SMTP accept over {lag.orders} orders: "
            f"p50 {lag.p50_ms:.0f} ms, p99 {lag.p99_ms:.0f} ms, max {lag.max_ms:.0f} ms, missing {lag.missing}"
        )
    for backend, hotspots in results.profile.items():
        lines.append(f"\nHottest functions of orders under CreateOrder ({backend}, py-spy):")
        lines.append(_markdown([["own %", "on stack %", "function"]] + [
            [f"{h.self_percent:.1f}", f"{h.total_percent:.1f}", h.function] for h in hotspots
        ]))
    return "\n".join(lines)


def headline(results: Results) -> str:
    if results.errors:
        return f"FAILED CALLS: {results.errors} calls failed in this run; its figures are not valid"
    return "No call failed in this run."


def write_json(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_without_nan(results.as_dict()), indent=2) + "\n")


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
    for axis, values, fmt in ((left, [m.rps for m in measurements], "{:,.0f}"),
                              (right, [m.p99_ms for m in measurements], "{:.1f}")):
        for position, value in zip(positions, values, strict=True):
            axis.text(value, position, " " + fmt.format(value), va="center", fontsize=7)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(f"ShopMesh benchmark: {headline(results)}", fontsize=10)
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
