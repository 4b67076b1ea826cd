"""The scale table's own arithmetic and wording, without a network: growth factors, the
table, its JSON, its options, and the history the loader writes."""

import datetime as dt
import json
import math
from collections import Counter
from dataclasses import replace

import pytest

from bench import loader, scale_report
from bench.__main__ import options_from, scale_options_from
from bench.scale import AtSize, BackendScale, CatchUp, Drain, Rate, ScaleOptions, ScaleResults
from bench.watchers import FanOut
from devmesh.postgres import DEFAULT_URL
from meshkit.money import Money
from orders import domain
from orders.storage import snapshot_from_json

SIZES = (1000, 10_000, 100_000)


def test_growth_is_cost_over_the_smallest_sizes_cost():
    # a rate's cost is its inverse: fewer calls per second are dearer
    assert scale_report.growth([1000.0, 800.0, 500.0], higher_is_better=True) == [1.0, 1.25, 2.0]
    assert scale_report.growth([2.0, 2.1, 4.0], higher_is_better=False) == pytest.approx([1.0, 1.05, 2.0])
    # nothing to compare with, or nothing measured: no factor
    assert scale_report.growth([0.0, 5.0], higher_is_better=False) == [None, None]
    assert scale_report.growth([5.0, None, math.nan, 0.0], higher_is_better=True) == [1.0, None, None, None]
    assert scale_report.growth([], higher_is_better=True) == []


def test_growth_text():
    assert scale_report.growth_text([1.0, 1.05, 1.3125]) == "x1.00, x1.05, x1.31"
    assert scale_report.growth_text([1.0, None, 2.0]) == "x1.00, —, x2.00"
    # one figure alone compares with nothing
    assert scale_report.growth_text([None, None, 1.0]) == ""
    assert scale_report.growth_text([None, None]) == ""


def rate(rps: float, errors: int = 0) -> Rate:
    return Rate(rps, 1000 / rps, 2000 / rps, errors, {"grpc-status 14": errors} if errors else {})


def at_size(orders: int, slower: float, unroutable: float = 0.0) -> AtSize:
    load = loader.Loaded(f"{orders:,} orders", 3 * orders, orders / 50_000, "Core executemany")
    return AtSize(
        orders,
        load,
        {"GetOrder": rate(2000 / slower), "ListOrders": rate(500 / slower), "CreateOrder": rate(300 / slower)},
        CatchUp(
            orders, orders, orders / 10_000 * slower, 0, orders / 20_000, {"orders": orders / 15_000, "envoy": 0.1}
        ),
        # 100 MB more for 10,000 watchers: 10.24 KB each
        FanOut(10_000, 100, 100.0, 200.0, 100.0, 400.0, 800.0 * slower, 0),
        unroutable,
        ["orders"] if unroutable else [],
    )


def results(errors: int = 0) -> ScaleResults:
    found = ScaleResults(
        options={
            "sizes": list(SIZES),
            "watchers": 10_000,
            "connections": 4,
            "streams": 16,
            "duration": 4.0,
            "warmup": 1.0,
            "backends": ["sqlite"],
        },
        seconds=754.4,
        load_seconds=61.0,
    )
    backend = found.backends["sqlite"] = BackendScale()
    backend.sizes = [at_size(1000, 1.0), at_size(10_000, 1.05, 1.3), at_size(100_000, 1.3125)]
    backend.sizes[0].calls["GetOrder"] = rate(2000, errors)
    backlog = loader.Loaded("100,000 unsent emails", 100_000, 5.0, "Core executemany")
    # 100,000 emails in 400 s, the sink busy 100 s of them: 1 ms each
    backend.drain = Drain(100_000, 100_000 - errors, 0, 400.0, 398.0, 100.0, 300.0, backlog)
    return found


def test_lines_show_each_figure_at_each_size_with_its_growth():
    by_figure = {line.figure: line for line in scale_report.lines(results())}
    calls = by_figure["GetOrder calls/s"]
    assert calls.values == pytest.approx([2000, 2000 / 1.05, 2000 / 1.3125])
    assert scale_report.growth_text(calls.growth) == "x1.00, x1.05, x1.31"
    p99 = by_figure["ListOrders (first page of 50) p99 ms"]
    assert scale_report.growth_text(p99.growth) == "x1.00, x1.05, x1.31"
    catch_up = by_figure["StreamOrderEvents catch-up from 0, events/s"]
    assert catch_up.values == pytest.approx([10_000, 10_000 / 1.05, 10_000 / 1.3125])
    assert by_figure["WatchOrder orders RSS per idle stream, KB (10,000 streams)"].values == pytest.approx([10.24] * 3)
    assert by_figure["WatchOrder all 10,000 notified, ms"].values == pytest.approx([800, 840, 1050])
    unroutable = by_figure["WatchOrder: Order service unroutable in Envoy (health checks missed), s"]
    assert unroutable.values == [0.0, 1.3, 0.0] and scale_report.growth_text(unroutable.growth) == ""
    # the drain is measured at the largest size only
    assert by_figure["Notifications: 100,000 unsent emails drained, s"].values == [None, None, 400.0]


def test_table(tmp_path):
    text = scale_report.table(results())
    lines = text.splitlines()
    assert "| backend | figure" in text and "| 1,000 " in text and "| 100,000 " in text
    [get] = [line for line in lines if "| GetOrder calls/s" in line]
    assert "| 2,000 " in get and "| 1,905 " in get and "| 1,524 " in get and "x1.00, x1.05, x1.31" in get
    [drain] = [line for line in lines if "unsent emails drained" in line]
    assert drain.rstrip(" |").endswith("400.0")
    assert "Loader (sqlite, 100,000 orders): 300,000 rows in 2.0 s, 150,000 rows/s (Core executemany)" in text
    assert "Catch-up (sqlite, 1,000): 1,000 of 1,000 events in 0.1 s; CPU of a core: reader 50%" in text
    assert "Fan-out (sqlite, 10,000): Envoy routed to no Order service for 1.3 s (orders)" in text
    assert (
        "Backlog (sqlite): 100,000 of 100,000 emails in 400.0 s from the Notification service's start (250/s; "
        "first to last 398.0 s), 0 twice; CPU of a core: Notification service 75%, SMTP sink 25% "
        "(1.00 ms per email: 1,000/s with a core of its own): the sink is not the limit"
    ) in text
    assert "No call failed, no event or email went missing." in text
    assert text.endswith("Scale table run time: 12 min 34 s in all (1 min 1 s of it loading)")


def test_a_busy_sink_is_named_as_the_limit():
    drain = results().backends["sqlite"].drain
    assert scale_report.sink_verdict(drain) == "the sink is not the limit"
    busy = Drain(drain.emails, drain.received, 0, 100.0, 99.0, 90.0, 50.0, drain.load)
    assert scale_report.sink_verdict(busy) == "the sink may be the limit"


def test_errors_fail_the_table_and_go_into_the_json(tmp_path):
    failed = results(errors=3)
    # three failed GetOrder calls, three emails missing
    assert failed.errors == 6
    assert scale_report.headline(failed).startswith("FAILED: 6 ")
    sizes = failed.backends["sqlite"].sizes
    sizes[1] = replace(sizes[1], fan_out=FanOut(10, 1, 1.0, 2.0, math.nan, math.nan, math.nan, 10))
    path = tmp_path / "scale.json"
    scale_report.write_json(failed, path)
    written = json.loads(path.read_text())["scale"]
    assert written["errors"] == 16 and written["seconds"] == 754.4
    [sqlite_sizes] = [written["backends"]["sqlite"]["sizes"]]
    assert [at["orders"] for at in sqlite_sizes] == list(SIZES)
    assert sqlite_sizes[0]["load"]["rows_per_second"] == 150_000
    assert sqlite_sizes[1]["fan_out"]["all_ms"] is None
    assert written["backends"]["sqlite"]["drain"]["missing"] == 3
    line = next(line for line in written["lines"] if line["figure"] == "GetOrder calls/s")
    assert line["growth"] == pytest.approx([1.0, 1.05, 1.3125])


def test_scale_options_from_the_command_line():
    _, args = options_from(["--scale"])
    options = scale_options_from(args)
    assert options.sizes == (10_000, 100_000, 1_000_000) and options.backlog == 100_000 and options.watchers == 10_000
    # PostgreSQL always, on the default server unless --pg names one
    assert options.backends == {"sqlite": None, "postgresql": DEFAULT_URL}
    _, args = options_from(
        [
            "--scale",
            "--pg",
            "postgresql+psycopg://u@db/postgres",
            "--scale-sizes",
            "200,400",
            "--scale-backlog",
            "300",
            "--scale-watchers",
            "50",
            "--scale-duration",
            "1",
        ]
    )
    options = scale_options_from(args)
    assert options.backends == {"sqlite": None, "postgresql": "postgresql+psycopg://u@db/postgres"}
    assert (options.sizes, options.backlog, options.watchers, options.duration) == ((200, 400), 300, 50, 1.0)
    _, args = options_from(["--scale", "--scale-backends", "sqlite"])
    assert scale_options_from(args).backends == {"sqlite": None}
    for wrong in (
        ["--scale-backends", "mysql"],
        ["--scale-sizes", "400,200"],
        ["--scale-backlog", "2000000"],
        ["--scale-sizes", "50"],
    ):
        _, args = options_from(["--scale", *wrong])
        with pytest.raises(SystemExit):
            scale_options_from(args)


def test_scale_options_check_themselves():
    ScaleOptions(sizes=(100,), backlog=100, backends={"sqlite": None})
    with pytest.raises(ValueError, match="ascending"):
        ScaleOptions(sizes=(1000, 1000))
    with pytest.raises(ValueError, match="backlog"):
        ScaleOptions(sizes=(1000,), backlog=1001)


def history(orders: int = 1000) -> loader.History:
    return loader.History(
        orders, "bench@example.com", "BENCH-1", Money.of("EUR", 1), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )


def test_the_history_gives_the_customer_a_long_list_spread_over_time():
    made = history()
    theirs = made.customers_orders()
    assert len(theirs) == loader.LISTED_ORDERS == 100 and theirs[0] == 0 and theirs[-1] == 990
    assert all(made.customer_of(index) == "bench@example.com" for index in theirs)
    others = Counter(made.customer_of(index) for index in range(made.orders) if index not in theirs)
    assert set(others.values()) == {loader.ORDERS_PER_CUSTOMER} and "bench@example.com" not in others
    # one a second, the newest at end; ids as a service would make them, and the same every time
    newest = made.order(999)
    assert newest.create_time == made.end and made.order(0).create_time == made.end - dt.timedelta(seconds=999)
    assert newest == history().order(999) and len({made.order(i).order_id for i in range(1000)}) == 1000
    assert newest.status == domain.OrderStatus.PENDING and newest.total == Money.of("EUR", 1)
    with pytest.raises(ValueError):
        history(99)


def test_loaded_rows_are_what_the_service_writes():
    made = history()
    order = made.order(7)
    event = loader._event_row(8, order)
    assert snapshot_from_json(event["snapshot"]) == order
    assert (event["sequence"], event["type"], event["event_time"]) == (8, "CREATED", order.update_time)
    row = loader._order_row(order)
    assert (row["total_units"], row["total_nanos"], row["status"]) == (1, 0, "PENDING")
    email = loader._notification_row(8, order, made.end)
    assert email["message_id"] == f"<{order.order_id}.8@shopmesh>" and email["status"] == "PENDING"
    assert email["recipient"] == order.customer_email and "1 x BENCH-1 at 1.00 EUR" in email["body"]
    assert loader.backlog_message_ids(made, 2) == {
        f"<{made.order(998).order_id}.999@shopmesh>",
        f"<{made.order(999).order_id}.1000@shopmesh>",
    }
    loaded = loader.Loaded("x", 300, 2.0, "COPY")
    assert loaded.rows_per_second == 150
