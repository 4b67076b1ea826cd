"""`make bench BENCH_ARGS=--scale` end to end on SQLite, with tiny sizes, a small backlog
and few watchers: the scale table must keep working (databases loaded and read back,
meshes started and stopped, every figure taken, the table and its JSON written), not
produce meaningful figures here."""

import json

import pytest

from tests.helpers.bench_runs import run_bench

pytestmark = pytest.mark.e2e

SIZES = (200, 400)
BACKLOG = 300
WATCHERS = 50


def test_a_short_scale_table_on_sqlite(tmp_path, cores_to_itself):
    output = run_bench(
        [
            "--scale",
            "--scale-backends",
            "sqlite",
            "--out",
            str(tmp_path),
            "--scale-sizes",
            ",".join(map(str, SIZES)),
            "--scale-backlog",
            str(BACKLOG),
            "--scale-watchers",
            str(WATCHERS),
            "--scale-duration",
            "1",
            "--scale-warmup",
            "0.5",
        ],
        timeout=150,
    )
    assert "No call failed, no event or email went missing." in output
    assert "Scale table run time:" in output
    rows = [line for line in output.splitlines() if line.startswith("| sqlite")]
    for figure in (
        "GetOrder calls/s",
        "ListOrders (first page of 50) calls/s",
        "CreateOrder calls/s",
        "StreamOrderEvents catch-up from 0, events/s",
        f"WatchOrder all {WATCHERS} notified, ms",
    ):
        [row] = [row for row in rows if f"| {figure} " in row]
        # a figure at each size, and the growth against the first
        assert row.count("|") == 2 + len(SIZES) + 2 and "x1.00, x" in row, row

    [written] = tmp_path.glob("*.json")
    results = json.loads(written.read_text())["scale"]
    assert results["errors"] == 0 and results["seconds"] > 0 and results["machine"]["cpus"] >= 1
    assert list(results["backends"]) == ["sqlite"]
    measured = results["backends"]["sqlite"]
    assert [at["orders"] for at in measured["sizes"]] == list(SIZES)
    for at in measured["sizes"]:
        size = at["orders"]
        # three rows an order (the order, its line, its event), written at some rate
        assert at["load"]["rows"] == 3 * size and at["load"]["rows_per_second"] > 0
        assert set(at["calls"]) == {"GetOrder", "ListOrders", "CreateOrder"}
        for name, call in at["calls"].items():
            assert call["rps"] > 0 and 0 < call["p50_ms"] <= call["p99_ms"] and call["errors"] == 0, (name, call)
        # every stored event read, in order, from the first to the last
        catch_up = at["catch_up"]
        assert (catch_up["expected"], catch_up["read"], catch_up["wrong"]) == (size, size, 0)
        assert catch_up["events_per_second"] > 0
        fan = at["fan_out"]
        assert (fan["watchers"], fan["missed"]) == (WATCHERS, 0) and fan["all_ms"] > 0
        assert fan["rss_watched_mb"] > 0
    drain = measured["drain"]
    # every email of the backlog arrived, once
    assert (drain["emails"], drain["received"], drain["duplicates"]) == (BACKLOG, BACKLOG, 0)
    assert drain["seconds"] > 0 and drain["load"]["rows"] == BACKLOG
    assert len(results["lines"]) >= 13
