"""`make bench` end to end, with every scenario cut short: the benchmark must keep
working (tools found, meshes started and stopped, figures and files written),
not produce meaningful figures here."""

import json

import pytest

from tests.helpers.bench_runs import run_bench
from tests.helpers.databases import PG_URL

pytestmark = pytest.mark.e2e

SCENARIOS = {
    "echo gRPC direct (plaintext)",
    "echo gRPC via Envoy",
    "echo gRPC via Envoy, anonymous GetProduct (no token check)",
    "echo gRPC via Envoy, plaintext upstream (no mTLS)",
    "echo REST via Envoy",
    "GetOrder gRPC",
    "ListOrders gRPC (50)",
    "CreateOrder gRPC",
    "CreateOrder REST",
    "CreateOrder gRPC at half rate",
    # the wide shape (16 connections x 16 streams), each a ratio to the anchor at that shape
    "echo gRPC via Envoy, 16x16",
    "GetOrder gRPC, 16x16",
    "CreateOrder gRPC, 16x16",
}


def test_a_short_benchmark_on_both_databases(postgres, tmp_path, cores_to_itself):
    output = run_bench(
        [
            "--pg",
            PG_URL,
            "--out",
            str(tmp_path),
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--watchers",
            "40",
            "--watcher-connections",
            "4",
            "--lag-orders",
            "10",
            "--profile-seconds",
            "1",
        ],
        timeout=240,
    )
    # every call carried a token where one is needed: a 401 or 403 would be a failed call
    assert "No call failed in this run." in output
    assert "JWT check cost (jwt_authn + rbac), Envoy CPU per call:" in output
    # the echo serves mutual TLS as the services do; Envoy with plaintext upstreams is the comparison
    assert "mTLS cost (Envoy to echo, mutual TLS vs plaintext upstream), CPU per call, Envoy + echo:" in output

    [written] = tmp_path.glob("*.json")
    results = json.loads(written.read_text())
    assert results["errors"] == 0 and results["machine"]["cpus"] >= 1
    measured = {(m["scenario"], m["target"]) for m in results["measurements"]}
    # a shop's load: its customers, with their own tokens; and the anchor's anonymous twin
    assert {m["caller"] for m in results["measurements"]} == {"customer", "anonymous"}
    for backend in ("sqlite", "postgresql"):
        assert {s for s, t in measured if t in (backend, "echo")} == SCENARIOS
        assert results["watch_fan_out"][backend]["missed"] == 0
        assert [lag["missing"] for lag in results["notification_lag"][backend]] == [0, 0]
        assert results["profile"][backend], "py-spy sampled nothing"
    assert all(m["rps"] > 0 and m["ratio"] > 0 for m in results["measurements"])
    assert {t["name"] for t in results["targets"]} >= {
        "GetOrder rps / echo via Envoy",
        "GetOrder rps / echo via Envoy, 16x16",
    }
    anchors = {m["scenario"]: m["rps"] for m in results["measurements"] if m["target"] == "echo"}
    for m in results["measurements"]:
        assert m["anchor"] == (
            "echo gRPC via Envoy, 16x16" if m["scenario"].endswith("16x16") else "echo gRPC via Envoy"
        )
        assert m["ratio"] == pytest.approx(m["rps"] / anchors[m["anchor"]])
    check = results["jwt_check"]
    assert check["envoy_us_with_token"] > 0 and check["envoy_us_anonymous"] > 0
    assert check["rps_with_token"] > 0 and check["rps_anonymous"] > 0
    assert set(check["get_order_share_percent"]) == {"sqlite", "postgresql"}
    cost = results["mtls_cost"]
    assert cost["us_with"] > 0 and cost["us_without"] > 0 and cost["rps_with"] > 0 and cost["rps_without"] > 0
    assert set(cost["get_order_share_percent"]) == {"sqlite", "postgresql"}
    assert written.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
