"""External load generators: h2load (nghttp2) for gRPC unary calls over h2c, wrk for
REST over HTTP/1.1. Each run is one process with a fixed duration; its latencies
come from the tool itself (h2load's per-request log, wrk's own histogram)."""

import json
import os
import re
import statistics
import struct
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message

from devmesh import paths

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
INSTALL_HINT = "apt-get install nghttp2-client wrk (make bench does this when run as root)"


class ToolError(Exception):
    """A load generator is missing or did not run."""


@dataclass(frozen=True)
class Load:
    """How hard to push: connections, and streams in flight on each (HTTP/2 only)."""

    connections: int
    streams: int = 1
    # requests per second for all connections together; None: as fast as they go
    rate: float | None = None

    @property
    def in_flight(self) -> int:
        return self.connections * self.streams


@dataclass(frozen=True)
class LoadResult:
    tool: str
    seconds: float
    succeeded: int
    # transport failures, resets, timeouts and non-2xx statuses the client saw itself
    failed: int
    p50_ms: float
    p99_ms: float
    # every answered call's latency, when the tool logs them (h2load), for combined()
    latencies_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def rps(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0


def combined(results: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: calls and seconds summed, percentiles of all calls."""
    if not results or any(r.succeeded and not r.latencies_ms for r in results):
        raise ValueError("combined() needs runs that logged their latencies (h2load)")
    latencies = tuple(latency for r in results for latency in r.latencies_ms)
    return LoadResult(
        results[0].tool,
        sum(r.seconds for r in results),
        sum(r.succeeded for r in results),
        sum(r.failed for r in results),
        *_p50_p99(list(latencies)),
        latencies,
    )


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message, uncompressed: what h2load sends as its body."""
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def require(tool: str) -> str:
    found = paths.executable(tool)
    if found is None:
        raise ToolError(f"{tool} not found: {INSTALL_HINT}")
    return found


def h2load(
    url: str,
    body: Path,
    load: Load,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    log_file: Path | None = None,
) -> LoadResult:
    """gRPC unary calls: POST of body with gRPC headers (and `headers`, e.g. the
    bearer token), over h2c, for `seconds`.

    h2load judges HTTP statuses only; a gRPC error in the trailers counts as a
    success here, which is why the benchmark also reads Envoy's access log."""
    log_file = log_file or body.with_suffix(".latency")
    command = [
        require("h2load"),
        url,
        "--data",
        str(body),
        "--header",
        "content-type: application/grpc",
        "--header",
        "te: trailers",
        *_header_args(headers),
        "--clients",
        str(load.connections),
        "--max-concurrent-streams",
        str(load.streams),
        "--threads",
        "1",
        "--duration",
        f"{round(seconds * 1000)}ms",
        "--log-file",
        str(log_file),
    ]
    if load.rate:
        command += ["--rps", f"{load.rate / load.connections:g}"]
    output = _run(command)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", output)
    if counts is None:
        raise ToolError(f"h2load printed no summary:\n{output[-2000:]}")
    total, done, succeeded, failed = map(int, counts.groups())
    latencies = _logged_latencies_ms(log_file)
    return LoadResult("h2load", seconds, succeeded, failed + total - done, *_p50_p99(latencies), tuple(latencies))


def wrk(
    url: str, method: str, body: str, load: Load, seconds: float, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """REST calls over HTTP/1.1 keep-alive connections, with `headers` (e.g. the
    bearer token) on each, for `seconds`."""
    env = {"WRK_METHOD": method, "WRK_BODY": body}
    command = [
        require("wrk"),
        "--threads",
        "1",
        "--connections",
        str(load.connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        *_header_args(headers),
        "--script",
        str(WRK_SCRIPT),
        url,
    ]
    output = _run(command, env)
    report = next((line for line in output.splitlines() if line.startswith("{")), None)
    if report is None:
        raise ToolError(f"wrk printed no report:\n{output[-2000:]}")
    figures = json.loads(report)
    failed = sum(figures["errors"].values())
    return LoadResult(
        "wrk",
        figures["duration_us"] / 1e6,
        figures["requests"] - figures["errors"]["status"],
        failed,
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
    )


def _header_args(headers: Mapping[str, str] | None) -> list[str]:
    """--header NAME: VALUE for each header (h2load and wrk spell it alike). A token given
    this way shows in the process list: the benchmark's tokens are signed by a key made
    for its own run and accepted only by the meshes it starts on loopback."""
    return [arg for name, value in (headers or {}).items() for arg in ("--header", f"{name}: {value}")]


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise ToolError(f"{Path(command[0]).name} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return result.stdout


def _logged_latencies_ms(log_file: Path) -> list[float]:
    """h2load's --log-file: start time (µs), status, duration (µs), tab-separated."""
    latencies = []
    with open(log_file) as lines:
        for line in lines:
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1].startswith("2"):
                latencies.append(int(fields[2]) / 1000)
    log_file.unlink()
    return latencies


def _p50_p99(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return (latencies[0], latencies[0]) if latencies else (0.0, 0.0)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[98]
