"""deploy/kubernetes agrees with the rest of ShopMesh, in every overlay and combination of
components (`make kube-check`; `make kube-test` runs them): Envoy's upstreams are the
Services, probes ask where the processes listen, every variable a service reads is set,
the image and entrypoint are compose's, and every pod is hardened."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from devmesh import credentials, envoy_config, kube_check, kube_secrets
from devmesh.paths import ROOT
from meshkit.server import BACKGROUND_STOP_SECONDS, SHUTDOWN_DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS
from tests.helpers.kube_manifests import SERVICES, SHOPMESH, Rendered, container_port, port_of, variants

pytestmark = pytest.mark.kube

VARIANTS = variants()
# the variables a service reads and may leave at their defaults in a cluster: policy
# whose defaults are the intended ones, OpenTelemetry's switch (on), and NO_COLOR (only
# readable lines have colour, and the manifests ask for JSON)
DEFAULTS_THAT_HOLD = {
    "NO_COLOR",
    "SHUTDOWN_DRAIN_SECONDS",
    "OTEL_SDK_DISABLED",
    "ORDERS_MAX_WATCHES",
    "ORDERS_MAX_WATCHES_PER_CLIENT",
    "INVENTORY_RESERVATION_TTL_SECONDS",
    "NOTIFICATIONS_RETRY_SECONDS",
    "NOTIFICATIONS_RETRY_MAX_SECONDS",
    "NOTIFICATIONS_MAX_ATTEMPTS",
}
# fault injection for the tests: never set in a deployment
FAULTS = re.compile(r"SHOPMESH_FAULT_\w+")
READS = re.compile(r"""(?:config\.\w+\(\s*env,\s*|env\.get\(\s*)"([A-Z][A-Z0-9_]+)\"""")


def each_variant():
    return pytest.mark.parametrize("rendered", VARIANTS.values(), ids=VARIANTS.keys())


def read_by(service: str) -> set[str]:
    """The variables the service's code and the shared meshkit read (a static look at the source)."""
    found = set()
    for package in (service, "meshkit"):
        for source in (ROOT / package).rglob("*.py"):
            found.update(READS.findall(source.read_text()))
    others = tuple(f"{other.upper()}_" for other in SERVICES if other != service)
    return {name for name in found if not name.startswith(others)}


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@each_variant()
def test_envoys_upstreams_are_the_headless_services_of_the_processes(rendered: Rendered):
    env = rendered.env("envoy")
    for service in SERVICES:
        host, _, port = env[f"{service.upper()}_UPSTREAM"].rpartition(":")
        assert host == service
        target = rendered.get("Service", host)["spec"]
        assert target.get("clusterIP") == "None", f"{host} must be headless: Envoy's DNS cluster sees every replica"
        (served,) = [p for p in target["ports"] if p["port"] == int(port)]
        labels = rendered.get("Deployment", service)["spec"]["template"]["metadata"]["labels"]
        assert target["selector"].items() <= labels.items()
        container = rendered.container(service)
        assert container_port(container, served["targetPort"]) == port_of(
            rendered.env(service)[f"{service.upper()}_LISTEN"]
        )


@each_variant()
def test_the_services_reach_envoys_mesh_listener_by_its_service(rendered: Rendered):
    for service in SERVICES:
        host, _, port = rendered.env(service)["MESH_ADDRESS"].rpartition(":")
        (mesh,) = [p for p in rendered.get("Service", host)["spec"]["ports"] if p["port"] == int(port)]
        assert container_port(rendered.container("envoy"), mesh["targetPort"]) == port_of(
            rendered.env("envoy")["ENVOY_MESH_LISTEN"]
        )


@each_variant()
def test_probes_ask_where_the_processes_listen_and_admin_stays_on_loopback(rendered: Rendered):
    for service in SERVICES:
        env, container = rendered.env(service), rendered.container(service)
        assert env[f"{service.upper()}_LISTEN"].startswith("0.0.0.0:")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port_of(env["HEALTH_LISTEN"]), (service, probe)
    env, envoy = rendered.env("envoy"), rendered.container("envoy")
    assert env["ENVOY_ADMIN_LISTEN"].startswith("127.0.0.1:")
    for probe in ("startupProbe", "readinessProbe"):
        assert envoy[probe]["httpGet"]["path"] == "/ready"
        assert container_port(envoy, envoy[probe]["httpGet"]["port"]) == port_of(env["ENVOY_READY_LISTEN"])
    assert container_port(envoy, envoy["livenessProbe"]["tcpSocket"]["port"]) == port_of(env["ENVOY_READY_LISTEN"])
    public = rendered.get("Service", "envoy-public")["spec"]["ports"][0]
    assert container_port(envoy, public["targetPort"]) == port_of(env["ENVOY_PUBLIC_TLS_LISTEN"])


@each_variant()
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_service_reads_is_set_or_has_a_default_that_holds(rendered: Rendered, service: str):
    env = rendered.env(service)
    assert not [name for name in env if FAULTS.fullmatch(name)]
    unset = {name for name in read_by(service) - DEFAULTS_THAT_HOLD if not FAULTS.fullmatch(name)} - set(env)
    # a database URL is read from the file its _FILE variable names
    unset = {name for name in unset if f"{name}_FILE" not in env}
    assert unset == set()
    assert env["MESH_TLS_DIR"] in {m["mountPath"] for m in rendered.container(service)["volumeMounts"]}
    assert env["OTEL_SERVICE_NAME"] == service


@each_variant()
def test_envoys_configuration_renders_from_its_deployment(rendered: Rendered, tmp_path, identities):
    """The one template, from the variables the Deployment sets, with its mounts' files."""
    env = rendered.env("envoy")
    made = credentials.ensure(credentials.Credentials(tmp_path / "credentials"))
    mounted = {
        "ENVOY_MESH_TLS_DIR": str(identities.directory("envoy")),
        "ENVOY_TLS_CERT": str(made.edge_cert),
        "ENVOY_TLS_KEY": str(made.edge_key),
        "SHOPMESH_JWKS_FILE": str(made.jwks),
    }
    mounts = {m["mountPath"] for m in rendered.container("envoy")["volumeMounts"]}
    for name in mounted:
        assert any(env[name].startswith(path) for path in mounts), f"{name}={env[name]} is on no mounted volume"
    params = envoy_config.params_from_env({**env, **mounted})
    config = tmp_path / "envoy.yaml"
    envoy_config.write(params, config)
    assert envoy_config.validate(config).returncode == 0
    assert (params.orders, params.ready) == (env["ORDERS_UPSTREAM"], "0.0.0.0:9902")


@each_variant()
def test_the_image_and_entrypoint_are_composes(rendered: Rendered):
    composed = compose()
    services = composed["services"]
    image = services["orders"].get("image") or composed["x-shopmesh"]["image"]
    for name in SHOPMESH:
        pod = rendered.pod(name)
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            # the image's ENTRYPOINT (python -m) with the module as the first argument, as compose runs it
            assert "command" not in container, f"{name}/{container['name']} replaces the entrypoint"
            assert container["image"].rpartition(":")[0].rpartition("/")[2] == image.partition(":")[0]
        assert rendered.container(name)["args"][0] == services[name]["command"][0]


def test_the_base_runs_the_image_compose_builds():
    base = yaml.safe_load((kube_check.KUBE / "base" / "kustomization.yaml").read_text())
    (image,) = base["images"]
    assert f"{image['newName']}:{image['newTag']}" == compose()["x-shopmesh"]["image"]


@each_variant()
def test_every_pod_is_hardened_and_bounded(rendered: Rendered):
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M).groups()
    for name, pod in rendered.pod_specs():
        assert pod["automountServiceAccountToken"] is False, name
        rendered.get("ServiceAccount", pod["serviceAccountName"])
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        if pod["containers"][0]["image"].rpartition(":")[0].endswith("shopmesh"):
            assert (str(context["runAsUser"]), str(context["runAsGroup"])) == dockerfile_user, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name}/{container['name']}"
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, where
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, where
        written = {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in written, f"{name}: a read-only root needs a writable /tmp"


@each_variant()
def test_scaling_notifications_stays_one_the_rest_have_budgets(rendered: Rendered):
    notifications = rendered.get("Deployment", "notifications")["spec"]
    assert notifications["replicas"] == 1 and notifications["strategy"] == {"type": "Recreate"}
    scaled = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in rendered.all("HorizontalPodAutoscaler")}
    assert scaled == {"orders", "envoy"}
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for pdb in rendered.all("PodDisruptionBudget")
    }
    assert budgets == {"orders", "inventory", "envoy"}
    for hpa in rendered.all("HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 1


@each_variant()
def test_a_pod_is_given_longer_than_its_process_needs_to_stop(rendered: Rendered):
    for service in SERVICES:
        pod = rendered.pod(service)
        pre_stop = rendered.container(service)["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        needed = float(pre_stop[1]) + SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + BACKGROUND_STOP_SECONDS
        assert pod["terminationGracePeriodSeconds"] > needed, service
    drain = rendered.container("envoy")["lifecycle"]["preStop"]["exec"]["command"]
    assert drain[:3] == ["python", "-m", "devmesh.envoy_drain"]
    assert rendered.pod("envoy")["terminationGracePeriodSeconds"] > float(drain[drain.index("--seconds") + 1])


@each_variant()
def test_no_secret_is_committed_and_every_one_read_is_one_kube_secrets_makes(rendered: Rendered, tmp_path):
    assert rendered.all("Secret") == []
    made = {
        doc["metadata"]["name"]: set(doc["data"])
        for doc in kube_secrets.documents({"SHOPMESH_DATA_DIR": str(tmp_path)})
        if doc["kind"] == "Secret"
    }
    for name, pod in rendered.pod_specs():
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]
                keys = {item["key"] for item in secret.get("items", [])} or made.get(secret["secretName"], {"?"})
                assert keys <= made.get(secret["secretName"], set()), (name, secret["secretName"])
                assert secret["defaultMode"] & 0o007 == 0, f"{name}: others may read {secret['secretName']}"


def test_the_linters_are_pinned_in_pyproject():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["shopmesh"]["kube-check-tools"]
    assert {re.split(r"[<>=]", pin)[0] for pin in pins} == {"checkov", "kubernetes-validate"}


def test_the_validator_fails_on_a_misspelt_field_and_on_an_unknown_kind(tmp_path: Path):
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {}\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n")
    for broken in (misspelt, unknown):
        assert kube_check.validate([broken], kube_check.NEWEST), broken.name
    fine = tmp_path / "fine.yaml"
    fine.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {}\n")
    assert kube_check.validate([fine], kube_check.OLDEST) == []


def test_the_policy_linter_fails_on_a_privileged_pod(tmp_path: Path):
    (tmp_path / "pod.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "x", "namespace": "shopmesh"},
                "spec": {"containers": [{"name": "x", "image": "x:1", "securityContext": {"privileged": True}}]},
            }
        )
    )
    assert kube_check.lint(tmp_path).returncode != 0
