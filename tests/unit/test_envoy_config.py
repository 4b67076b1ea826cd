"""The one Envoy template renders and validates for every environment."""

import json
import subprocess
from dataclasses import replace

import pytest
import yaml

from devmesh import credentials, envoy_config
from devmesh.envoy_config import EnvoyParams


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return credentials.ensure(credentials.Credentials(tmp_path_factory.mktemp("credentials")))


@pytest.fixture(scope="module")
def local(made, identities):
    return EnvoyParams(
        jwks_file=made.jwks, tls_cert=made.edge_cert, tls_key=made.edge_key, mesh_tls_dir=identities.directory("envoy")
    )


def compose(local: EnvoyParams) -> EnvoyParams:
    return replace(
        local,
        public="127.0.0.1:8080",
        public_tls="0.0.0.0:8443",
        mesh="0.0.0.0:8081",
        admin="0.0.0.0:9901",
        orders="orders:50051",
        inventory="inventory:50052",
        notifications="notifications:50053",
    )


def kubernetes(local: EnvoyParams) -> EnvoyParams:
    """deploy/kubernetes: admin on loopback, its /ready alone on the pod's address."""
    return replace(compose(local), admin="127.0.0.1:9901", ready="0.0.0.0:9902")


def identity_provider(local: EnvoyParams) -> EnvoyParams:
    return replace(
        local,
        jwks_url="https://idp.example.com/realms/shop/protocol/openid-connect/certs",
        roles_claim="realm_access.roles",
        jwt_issuer="https://idp.example.com/realms/shop",
    )


@pytest.mark.parametrize(
    "variant",
    [lambda p: p, compose, kubernetes, identity_provider],
    ids=["local", "compose", "kubernetes", "identity provider"],
)
def test_rendered_config_passes_envoy_validate(variant, local, tmp_path):
    path = tmp_path / "envoy.yaml"
    envoy_config.write(variant(local), path)
    result = envoy_config.validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def listeners(config: str) -> dict[str, dict]:
    return {item["name"]: item for item in yaml.safe_load(config)["static_resources"]["listeners"]}


def test_tls_is_served_whenever_a_certificate_is_configured(local):
    assert set(listeners(envoy_config.render(local))) == {"public", "public_tls", "mesh"}
    without = replace(local, tls_cert=None, tls_key=None)
    assert set(listeners(envoy_config.render(without))) == {"public", "mesh"}
    with pytest.raises(ValueError, match="go together"):
        envoy_config.render(replace(local, tls_key=None))


def test_the_ready_listener_and_its_admin_cluster_are_there_only_when_asked_for(local):
    def clusters(config: str) -> set[str]:
        return {item["name"] for item in yaml.safe_load(config)["static_resources"]["clusters"]}

    assert "ready" not in listeners(envoy_config.render(local)) and "admin" not in clusters(envoy_config.render(local))
    asked = envoy_config.render(replace(local, ready="0.0.0.0:9902"))
    assert "ready" in listeners(asked) and "admin" in clusters(asked)
    assert envoy_config.params_from_env({"ENVOY_READY_LISTEN": "0.0.0.0:9902"}).ready == "0.0.0.0:9902"
    with pytest.raises(ValueError, match="IP address"):
        envoy_config.render(replace(local, ready="envoy:9902"))


def test_plaintext_on_a_public_address_is_refused_unless_asked_for(local):
    with pytest.raises(ValueError, match="ENVOY_ALLOW_PLAINTEXT_PUBLIC"):
        envoy_config.render(replace(local, public="0.0.0.0:8080"))
    allowed = envoy_config.render(replace(local, public="0.0.0.0:8080", allow_plaintext_public=True))
    assert "public" in listeners(allowed)


def test_tokens_need_a_key_source(local):
    with pytest.raises(ValueError, match="SHOPMESH_JWKS"):
        envoy_config.render(replace(local, jwks_file=None))


@pytest.mark.parametrize(
    "keys, complaint",
    [
        ([{"kty": "oct", "k": "c2VjcmV0"}], "public keys only"),
        ([], "public keys only"),
        ([{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret"}], "private key"),
    ],
    ids=["shared secret", "empty", "private key"],
)
def test_a_jwks_file_must_hold_public_asymmetric_keys(local, tmp_path, keys, complaint):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    with pytest.raises(ValueError, match=complaint):
        envoy_config.render(replace(local, jwks_file=path))


def test_an_identity_providers_url_replaces_the_file(local):
    config = yaml.safe_load(envoy_config.render(identity_provider(local)))
    jwt_filter = next(
        f
        for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "http_filters"
        ]
        if f["name"] == "envoy.filters.http.jwt_authn"
    )
    provider = jwt_filter["typed_config"]["providers"]["bearer"]
    assert "local_jwks" not in provider and provider["remote_jwks"]["http_uri"]["cluster"] == "jwks"
    jwks = next(c for c in config["static_resources"]["clusters"] if c["name"] == "jwks")
    assert jwks["transport_socket"]["typed_config"]["sni"] == "idp.example.com"
    plain = yaml.safe_load(envoy_config.render(replace(local, jwks_url="http://127.0.0.1:9999/jwks.json")))
    assert "transport_socket" not in next(c for c in plain["static_resources"]["clusters"] if c["name"] == "jwks")
    assert "jwks" not in {c["name"] for c in yaml.safe_load(envoy_config.render(local))["static_resources"]["clusters"]}


def test_params_come_from_the_documented_variables():
    params = envoy_config.params_from_env(
        {
            "ENVOY_PUBLIC_LISTEN": "127.0.0.1:1",
            "MESH_ADDRESS": "127.0.0.1:2",
            "ORDERS_LISTEN": "127.0.0.1:3",
            "INVENTORY_UPSTREAM": "inv:4",
        }
    )
    assert (params.public, params.mesh, params.orders, params.inventory) == (
        "127.0.0.1:1",
        "127.0.0.1:2",
        "127.0.0.1:3",
        "inv:4",
    )
    assert params.admin == "127.0.0.1:9901"


def test_limits_must_be_whole_numbers_and_only_trusted_hops_may_be_zero():
    assert envoy_config.params_from_env({"ENVOY_XFF_TRUSTED_HOPS": "0"}).xff_trusted_hops == 0
    assert envoy_config.params_from_env({"ENVOY_CLIENT_RATE_LIMIT_RPS": "7"}).client_rate_limit_rps == 7
    for name, value in [
        ("ENVOY_CLIENT_RATE_LIMIT_RPS", "0"),
        ("ENVOY_XFF_TRUSTED_HOPS", "-1"),
        ("ENVOY_STREAM_MAX_REQUESTS", "x"),
    ]:
        with pytest.raises(ValueError, match=name):
            envoy_config.params_from_env({name: value})


def clusters(config: str) -> dict[str, dict]:
    return {item["name"]: item for item in yaml.safe_load(config)["static_resources"]["clusters"]}


def test_replicas_are_one_endpoint_each_in_every_cluster_of_their_service(local):
    rendered = clusters(envoy_config.render(replace(local, orders="127.0.0.1:50051, 127.0.0.1:50061")))
    for name in ("orders", "orders_streams", "orders_events"):
        endpoints = rendered[name]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [50051, 50061]
    with pytest.raises(ValueError, match="HOST:PORT"):
        envoy_config.render(replace(local, orders="127.0.0.1:50051,"))


def test_streams_have_slots_of_their_own_apart_from_unary_calls(local):
    config = yaml.safe_load(envoy_config.render(replace(local, unary_max_requests=50, stream_max_requests=70)))
    limits = {
        c["name"]: c["circuit_breakers"]["thresholds"][0]["max_requests"]
        for c in config["static_resources"]["clusters"]
        if c["name"].startswith("orders")
    }
    assert limits == {"orders": 50, "orders_streams": 70, "orders_events": 1000}
    routes = {
        r["name"]: r["route"]["cluster"]
        for listener in config["static_resources"]["listeners"]
        for r in listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0][
            "routes"
        ]
    }
    assert routes["public.orders.watch"] == routes["mesh.orders.watch"] == routes["public.health"] == "orders_streams"
    assert routes["mesh.orders.events"] == "orders_events"
    assert routes["public.orders.read"] == routes["mesh.orders.read"] == "orders"


def test_a_listener_needs_an_ip_address(local):
    with pytest.raises(ValueError, match="IP address"):
        envoy_config.render(replace(local, public="localhost:8080"))


def test_the_cli_refuses_a_plaintext_public_listener_in_one_line(made, tmp_path):
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "devmesh.envoy_config", "--out", str(tmp_path / "e.yaml")],
        env={"ENVOY_PUBLIC_LISTEN": "0.0.0.0:8080", "SHOPMESH_JWKS_FILE": str(made.jwks)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "plaintext" in result.stderr and not (tmp_path / "e.yaml").exists()


def test_cli_fails_with_one_line_on_a_bad_address(tmp_path):
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "devmesh.envoy_config", "--out", str(tmp_path / "e.yaml")],
        env={"ENVOY_PUBLIC_LISTEN": "nonsense"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_envoys_mesh_identity_is_read_from_watched_files_beside_the_bootstrap(local, tmp_path):
    out = tmp_path / "envoy.yaml"
    envoy_config.write(local, out)
    files = envoy_config.secret_files(out)
    assert all(path.parent == tmp_path for path in files.values())
    directory = str(local.mesh_tls_dir.resolve())
    [identity] = yaml.safe_load(files["mesh_identity"].read_text())["resources"]
    assert identity["tls_certificate"]["private_key"] == {"filename": f"{directory}/key.pem"}
    assert identity["tls_certificate"]["watched_directory"] == {"path": directory}
    [trust] = yaml.safe_load(files["mesh_trust"].read_text())["resources"]
    assert trust["validation_context"]["watched_directory"] == {"path": directory}
    # and no key material in the bootstrap itself
    assert "PRIVATE KEY" not in out.read_text() + files["mesh_identity"].read_text()


def test_without_a_mesh_identity_envoy_is_not_rendered(local):
    with pytest.raises(ValueError, match="ENVOY_MESH_TLS_DIR"):
        envoy_config.render(replace(local, mesh_tls_dir=None))


def test_the_mesh_listener_requires_a_client_certificate_and_every_service_cluster_presents_one(local):
    config = yaml.safe_load(envoy_config.render(local))
    [chain] = listeners(envoy_config.render(local))["mesh"]["filter_chains"]
    assert chain["transport_socket"]["typed_config"]["require_client_certificate"] is True
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] in ("orders", "orders_streams", "orders_events", "inventory", "notifications"):
            tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
            [identity] = tls["tls_certificate_sds_secret_configs"]
            assert identity["name"] == "mesh_identity"
            [san] = tls["combined_validation_context"]["default_validation_context"]["match_typed_subject_alt_names"]
            service = cluster["name"].split("_")[0]
            assert san == {"san_type": "URI", "matcher": {"exact": f"spiffe://shopmesh.local/{service}"}}


def test_the_service_clusters_are_every_cluster_that_calls_a_service(local):
    """What the launcher waits for at start (every one healthy) and what the benchmark's
    plaintext Envoy strips: each cluster whose upstream is one of the services."""
    clusters = yaml.safe_load(envoy_config.render(local))["static_resources"]["clusters"]
    calling = {
        c["name"]
        for c in clusters
        if any(
            e["endpoint"]["address"]["socket_address"]["port_value"] in (50051, 50052, 50053)
            for group in c["load_assignment"]["endpoints"]
            for e in group["lb_endpoints"]
        )
    }
    assert calling == set(envoy_config.SERVICE_CLUSTERS)
