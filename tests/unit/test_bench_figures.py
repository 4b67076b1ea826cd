"""The benchmark's own arithmetic: what it reads from its tools and how it reports."""

import json
import math

import pytest
import yaml
from cryptography import x509

from bench import report
from bench.accesslog import AccessLog, _failure
from bench.anchor import echo_identity, without_upstream_tls, write_plaintext_upstream
from bench.loadgen import Load, LoadResult, _logged_latencies_ms, _p50_p99, combined, grpc_frame
from bench.profile import hotspots
from bench.suite import ANCHOR, ANONYMOUS, PLAINTEXT_UPSTREAM, Measurement, Options, Results, alternation, wide
from bench.watchers import FanOut
from devmesh import credentials, envoy_config
from devmesh.envoy_config import SERVICE_CLUSTERS
from shopmesh.orders.v1 import orders_pb2

WIDE_ANCHOR = wide(ANCHOR, Load(16, 16))


def test_grpc_frame_is_the_length_prefixed_message():
    message = orders_pb2.GetOrderRequest(order_id="abc")
    frame = grpc_frame(message)
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == len(frame) - 5
    assert orders_pb2.GetOrderRequest.FromString(frame[5:]) == message


def test_h2load_log_gives_latencies_of_answered_calls_only(tmp_path):
    log = tmp_path / "calls.latency"
    log.write_text("1700000000000000\t200\t1500\n1700000000000100\t200\t2500\n1700000000000200\t-1\t900\n")
    assert _logged_latencies_ms(log) == [1.5, 2.5]
    assert not log.exists()


def test_percentiles():
    p50, p99 = _p50_p99([float(n) for n in range(1, 101)])
    assert p50 == 50.5 and 99 <= p99 <= 100
    assert _p50_p99([]) == (0.0, 0.0)


def test_runs_of_one_load_combine_into_one():
    first = LoadResult("h2load", 2.0, 3, 1, 2.0, 3.0, (1.0, 2.0, 3.0))
    second = LoadResult("h2load", 2.0, 2, 0, 4.5, 5.0, (4.0, 5.0))
    both = combined([first, second])
    assert (both.seconds, both.succeeded, both.failed, both.rps) == (4.0, 5, 1, 1.25)
    assert both.p50_ms == 3.0 and 4.9 <= both.p99_ms <= 5.0
    # wrk reports percentiles only: its runs cannot be combined
    with pytest.raises(ValueError):
        combined([LoadResult("wrk", 1.0, 10, 0, 1.0, 2.0)])


def test_loads_measured_together_alternate_forth_and_back():
    assert alternation(2) == (0, 1, 1, 0, 0, 1, 1, 0)
    for loads in (2, 3):
        order = alternation(loads)
        rounds = [[at for at, side in enumerate(order) if side == load] for load in range(loads)]
        # as many rounds each, at the same mean time: a steady drift falls on all alike
        assert len({len(each) for each in rounds}) == 1
        assert len({sum(each) for each in rounds}) == 1


def test_access_log_failures_by_method(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.accesslog.FLUSH_SECONDS", 0)
    path = tmp_path / "access.log"
    ok = {
        "listener": "public",
        "response_code": 200,
        "grpc_status": None,
        "grpc_status_trailer": "0",
        "response_flags": "-",
        "grpc_path": "/A/Get",
    }
    path.write_text(json.dumps(ok) + "\n")
    log = AccessLog(path, "public")
    mark = log.mark()
    refused = {**ok, "grpc_status": "16", "grpc_status_trailer": None}
    lines = [refused, {**refused, "grpc_path": "/B/Get"}, ok, {**refused, "listener": "mesh"}]
    with open(path, "a") as file:
        file.writelines(json.dumps(line) + "\n" for line in lines)
    assert log.failures_by_method_since(mark) == {"/A/Get": {"grpc-status 16": 1}, "/B/Get": {"grpc-status 16": 1}}
    assert log.failures_since(mark) == {"grpc-status 16": 2}
    assert log.failures_since(0) == {"grpc-status 16": 2}


def test_access_log_failures():
    ok = {"response_code": 200, "grpc_status": None, "grpc_status_trailer": "0", "response_flags": "-"}
    assert _failure(ok) is None
    assert _failure({**ok, "grpc_status": "14"}) == "grpc-status 14"
    assert _failure({**ok, "grpc_status_trailer": "13"}) == "grpc-status 13"
    assert _failure({**ok, "response_code": 503, "response_flags": "UO"}) == "HTTP 503 UO"
    # a call the load generator dropped when its time was up is not a failure
    assert _failure({**ok, "response_code": 0, "response_flags": "DC"}) is None


def test_hotspots_sum_own_and_total_samples_per_function():
    collapsed = "\n".join(
        [
            "main (app.py:1);handle (api.py:10);query (db.py:5) 6",
            "main (app.py:1);handle (api.py:12);encode (api.py:30) 3",
            "main (app.py:1);idle (loop.py:2) 1",
        ]
    )
    found = {h.function: h for h in hotspots(collapsed)}
    assert found["query (db.py)"].self_percent == 60
    # two lines of handle are one function
    assert "handle (api.py)" not in found and found["encode (api.py)"].total_percent == 30
    assert hotspots("") == []


def measurement(
    scenario: str, target: str, rps: float, p99: float = 5.0, cpu: dict | None = None, anchor: str = ANCHOR
) -> Measurement:
    return Measurement(
        scenario, target, "h2load", 64, None, rps, 1.0, p99, 0, {}, cpu or {"orders": 1.5}, anchor=anchor
    )


def results() -> Results:
    found = Results(options={"backends": ["sqlite"]})
    found.measurements = [
        # CPU seconds per 1,000 calls: 140 and 100 µs of Envoy per call
        measurement(ANCHOR, "echo", 8000, cpu={"envoy": 0.140, "echo": 0.2}),
        measurement(ANONYMOUS, "echo", 10000, cpu={"envoy": 0.100, "echo": 0.2}),
        measurement("GetOrder gRPC", "sqlite", 4000, cpu={"envoy": 0.150, "orders": 1.450, "inventory": 0.01}),
        measurement("CreateOrder gRPC", "sqlite", 1000),
        measurement("CreateOrder REST", "sqlite", 950),
        measurement("CreateOrder gRPC at half rate", "sqlite", 500, p99=30.0),
        # 140 + 200 µs per call with mutual TLS to the echo (the anchor), 130 + 170 without
        measurement(PLAINTEXT_UPSTREAM, "echo", 8800, cpu={"envoy": 0.130, "echo": 0.170}),
        # the wide shape: each a ratio to the anchor at that shape
        measurement(WIDE_ANCHOR, "echo", 5000, anchor=WIDE_ANCHOR),
        measurement("GetOrder gRPC, 16x16", "sqlite", 3500, anchor=WIDE_ANCHOR),
        measurement("CreateOrder gRPC, 16x16", "sqlite", 1000, anchor=WIDE_ANCHOR),
    ]
    found.fan_out["sqlite"] = FanOut(2000, 20, 80.0, 140.0, 20.0, 60.0, math.nan, 0)
    return found


def test_the_wide_shape_is_measured_only_where_it_differs_from_the_main_one():
    assert Options().wide_load == Load(16, 16) and WIDE_ANCHOR == "echo gRPC via Envoy, 16x16"
    assert Options(connections=16, streams=16).wide_load is None


def test_ratios_and_targets():
    figures = results()
    report.add_ratios(figures)
    assert [m.ratio for m in figures.measurements][:4] == [1.0, 1.25, 0.5, 0.125]
    assert [m.ratio for m in figures.measurements][-3:] == [1.0, 0.7, 0.2]
    met = {t.name: t.met for t in report.targets(figures)}
    assert met == {
        "GetOrder rps / echo via Envoy": False,
        "CreateOrder rps / echo via Envoy": False,
        "GetOrder rps / echo via Envoy, 16x16": True,
        "CreateOrder rps / echo via Envoy, 16x16": False,
        "REST CreateOrder rps / gRPC CreateOrder": True,
        "CreateOrder p99 at half its max rate (ms)": False,
        "orders RSS with 2000 watchers (MB)": True,
        "all 2000 watchers notified (ms)": False,  # NaN: nobody was notified
    }


def test_token_check_is_the_envoy_cpu_between_the_anchor_and_its_anonymous_twin():
    check = report.token_check(results())
    assert math.isclose(check.envoy_us_with_token, 140) and math.isclose(check.envoy_us_anonymous, 100)
    assert math.isclose(check.envoy_us_per_call, 40)
    assert (check.rps_with_token, check.rps_anonymous) == (8000, 10000)
    assert math.isclose(check.rps_change_percent, -20)
    # 40 µs of the 150 + 1,450 µs that Envoy and orders spend per GetOrder
    assert math.isclose(check.get_order_share_percent["sqlite"], 2.5)
    without_twin = results()
    without_twin.measurements = [m for m in without_twin.measurements if m.scenario != ANONYMOUS]
    assert report.token_check(without_twin) is None


def test_mtls_cost_is_the_cpu_of_envoy_and_echo_between_the_anchor_and_its_plaintext_twin():
    cost = report.mtls_cost(results())
    assert math.isclose(cost.us_with, 340) and math.isclose(cost.us_without, 300)
    assert math.isclose(cost.us_per_call, 40)
    assert math.isclose(cost.envoy_us_with - cost.envoy_us_without, 10)
    assert math.isclose(cost.echo_us_with - cost.echo_us_without, 30)
    assert (cost.rps_with, cost.rps_without) == (8000, 8800)
    assert math.isclose(cost.rps_change_percent, 100 * (8000 / 8800 - 1))
    assert math.isclose(cost.get_order_share_percent["sqlite"], 2.5)
    without_twin = results()
    without_twin.measurements = [m for m in without_twin.measurements if m.scenario != PLAINTEXT_UPSTREAM]
    assert report.mtls_cost(without_twin) is None


@pytest.fixture(scope="module")
def envoy_params(tmp_path_factory, identities):
    made = credentials.ensure(credentials.Credentials(tmp_path_factory.mktemp("credentials")))
    return envoy_config.EnvoyParams(jwks_file=made.jwks, mesh_tls_dir=identities.directory("envoy"))


def clusters(config: str) -> dict[str, dict]:
    return {item["name"]: item for item in yaml.safe_load(config)["static_resources"]["clusters"]}


def test_the_echo_certificate_is_one_every_service_cluster_takes(identities, envoy_params):
    tls = echo_identity(identities)
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(identities.ca.read_bytes()))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "echo" in names.get_values_for_type(x509.DNSName)
    for name in SERVICE_CLUSTERS:
        context = clusters(envoy_config.render(envoy_params))[name]["transport_socket"]["typed_config"]
        [wanted] = context["common_tls_context"]["combined_validation_context"]["default_validation_context"][
            "match_typed_subject_alt_names"
        ]
        assert wanted["matcher"]["exact"] in names.get_values_for_type(x509.UniformResourceIdentifier)
    assert tls.key.stat().st_mode & 0o777 == 0o600 and tls.ca.read_text().startswith("-----BEGIN CERTIFICATE")


def test_the_plaintext_upstream_variant_drops_the_service_clusters_tls_only(envoy_params, tmp_path):
    rendered = envoy_config.render(envoy_params)
    variant = without_upstream_tls(rendered)
    before, after = clusters(rendered), clusters(variant)
    assert all(
        "transport_socket" in before[name] and "transport_socket" not in after[name] for name in SERVICE_CLUSTERS
    )
    assert {name: c for name, c in after.items() if name not in SERVICE_CLUSTERS} == {
        name: c for name, c in before.items() if name not in SERVICE_CLUSTERS
    }
    assert (
        yaml.safe_load(variant)["static_resources"]["listeners"]
        == yaml.safe_load(rendered)["static_resources"]["listeners"]
    )
    with pytest.raises(ValueError, match="no upstream TLS"):
        without_upstream_tls(variant)
    # and Envoy takes it
    path = tmp_path / "envoy.yaml"
    write_plaintext_upstream(envoy_params, path)
    assert clusters(path.read_text()) == after
    result = envoy_config.validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reports(tmp_path):
    figures = results()
    report.add_ratios(figures)
    text = report.table(figures)
    assert "| GetOrder gRPC" in text and "0.50" in text and "Targets:" in text
    assert "JWT check cost (jwt_authn + rbac), Envoy CPU per call: 40 µs" in text and "(-20.0 %)" in text
    assert "mTLS cost (Envoy to echo, mutual TLS vs plaintext upstream), CPU per call, Envoy + echo: 40 µs" in text
    assert "8,000 calls/s with mTLS, 8,800 without (-9.1 %)" in text
    assert report.headline(figures) == "No call failed in this run."
    figures.measurements[2].errors = 3
    assert report.headline(figures).startswith("FAILED CALLS: 3")
    report.write_json(figures, tmp_path / "run.json")
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["errors"] == 3 and written["watch_fan_out"]["sqlite"]["all_ms"] is None
    assert math.isclose(written["jwt_check"]["envoy_us_per_call"], 40)
    assert math.isclose(written["mtls_cost"]["us_per_call"], 40)
    report.write_chart(figures, tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
