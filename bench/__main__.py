"""`make bench`: python -m bench [--pg [URL]] [--duration S] [...]; the scale table
instead with --scale [--scale-sizes N,N,...] [...]"""

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

from bench import report, scale_report
from bench.loadgen import ToolError
from bench.scale import ScaleError, ScaleOptions, ScaleRun
from bench.suite import Options, Suite
from devmesh.launcher import MeshError
from devmesh.postgres import DEFAULT_URL

RESULTS = Path("bench-results")
T = TypeVar("T")


def options_from(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--pg",
        nargs="?",
        const=DEFAULT_URL,
        metavar="URL",
        help=f"also run on PostgreSQL (default server {DEFAULT_URL})",
    )
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds of warm-up per scenario")
    parser.add_argument("--connections", type=int, default=defaults.connections, help="h2load connections")
    parser.add_argument("--streams", type=int, default=defaults.streams, help="h2load streams per connection")
    parser.add_argument(
        "--wide-connections",
        type=int,
        default=defaults.wide_connections,
        help="h2load connections of the wide shape (the anchor, GetOrder and CreateOrder again)",
    )
    parser.add_argument(
        "--wide-streams",
        type=int,
        default=defaults.wide_streams,
        help="h2load streams per connection of the wide shape",
    )
    parser.add_argument("--rest-connections", type=int, default=defaults.rest_connections, help="wrk connections")
    parser.add_argument("--watchers", type=int, default=defaults.watchers, help="idle WatchOrder streams")
    parser.add_argument("--watcher-connections", type=int, default=defaults.watcher_connections)
    parser.add_argument("--lag-orders", type=int, default=defaults.lag_orders, help="orders timed to their email")
    parser.add_argument("--profile-seconds", type=float, default=defaults.profile_seconds)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument("--keep", action="store_true", help="keep databases and logs (printed at the end)")
    scale = ScaleOptions()
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead of the scenarios above, the scale table: how cost grows with the orders "
        "stored, on SQLite and PostgreSQL (--pg names the server)",
    )
    parser.add_argument(
        "--scale-sizes",
        type=_sizes,
        default=",".join(map(str, scale.sizes)),
        metavar="N,N,...",
        help="orders stored, one fresh mesh each (default %(default)s)",
    )
    parser.add_argument(
        "--scale-backlog",
        type=int,
        default=scale.backlog,
        help="unsent emails drained at the largest size (default %(default)s)",
    )
    parser.add_argument(
        "--scale-watchers",
        type=int,
        default=scale.watchers,
        help="idle WatchOrder streams at each size (default %(default)s)",
    )
    parser.add_argument("--scale-duration", type=float, default=scale.duration, help="seconds measured per rate")
    parser.add_argument("--scale-warmup", type=float, default=scale.warmup, help="seconds of warm-up per rate")
    parser.add_argument(
        "--scale-backends",
        type=_names,
        default=",".join(scale.backends),
        metavar="NAME,...",
        help="sqlite, postgresql or both (default %(default)s)",
    )
    args = parser.parse_args(argv)
    backends = {"sqlite": None, **({"postgresql": args.pg} if args.pg else {})}
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        streams=args.streams,
        wide_connections=args.wide_connections,
        wide_streams=args.wide_streams,
        rest_connections=args.rest_connections,
        watchers=args.watchers,
        watcher_connections=args.watcher_connections,
        lag_orders=args.lag_orders,
        profile_seconds=args.profile_seconds,
        backends=backends,
    )
    return options, args


def scale_options_from(args: argparse.Namespace) -> ScaleOptions:
    """The scale table runs on PostgreSQL always (unless --scale-backends leaves it out),
    on the server --pg names or the default one."""
    servers = {"sqlite": None, "postgresql": args.pg or DEFAULT_URL}
    unknown = set(args.scale_backends) - set(servers)
    if unknown:
        raise SystemExit(f"python -m bench: unknown --scale-backends {', '.join(sorted(unknown))}")
    try:
        return ScaleOptions(
            sizes=args.scale_sizes,
            backlog=args.scale_backlog,
            watchers=args.scale_watchers,
            duration=args.scale_duration,
            warmup=args.scale_warmup,
            connections=args.connections,
            streams=args.streams,
            backends={name: servers[name] for name in args.scale_backends},
        )
    except ValueError as error:
        raise SystemExit(f"python -m bench: {error}") from None


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in text.split(","))


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv: list[str] | None = None) -> int:
    options, args = options_from(argv)
    if args.scale:
        return scale_main(scale_options_from(args), args)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="shopmesh-bench-"))
    results = _run("make bench", workdir, Suite(options, workdir, say=_say).run)
    if results is None:
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    report.add_ratios(results)
    results.options["seconds"] = round(time.monotonic() - started)
    json_path, chart_path = args.out / f"{stamp}.json", args.out / f"{stamp}.png"
    report.write_json(results, json_path)
    report.write_chart(results, chart_path)
    print()
    print(report.headline(results))
    print(report.table(results))
    print(f"\nwritten: {json_path}, {chart_path}" + (f"; work files in {workdir}" if args.keep else ""))
    return 1 if results.errors else 0


def scale_main(options: ScaleOptions, args: argparse.Namespace) -> int:
    """The scale table alone: its run time is its own (ScaleResults.seconds)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="shopmesh-bench-scale-"))
    results = _run("make bench --scale", workdir, ScaleRun(options, workdir, say=_say, keep=args.keep).run)
    if results is None:
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    json_path = args.out / f"{stamp}.json"
    scale_report.write_json(results, json_path)
    print()
    print(scale_report.table(results))
    print(f"\nwritten: {json_path}" + (f"; work files in {workdir}" if args.keep else ""))
    return 1 if results.errors else 0


def _say(line: str) -> None:
    print(line, flush=True)


def _run(what: str, workdir: Path, go: Callable[[], T]) -> T | None:
    """go()'s results; None once it said why it stopped (a tool missing, a mesh that did
    not start, a call refused), its logs kept in workdir."""
    try:
        return go()
    except (ToolError, MeshError, ScaleError) as error:
        print(f"{what}: {error}\n(logs kept in {workdir})", file=sys.stderr)
    except grpc.RpcError as error:
        # a call of the benchmark's own clients (set-up, watchers, lag) was refused or failed
        failed = f"{error.code()} {error.details()}" if hasattr(error, "code") else repr(error)
        print(f"{what}: FAILED CALL: {failed}\n(logs kept in {workdir})", file=sys.stderr)
    except BaseException:
        print(f"{what}: stopped; logs kept in {workdir}", file=sys.stderr)
        raise
    return None


if __name__ == "__main__":
    sys.exit(main())
