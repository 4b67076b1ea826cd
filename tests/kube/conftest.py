"""`make kube-test`: the dev overlay of deploy/kubernetes played with podman (tests/kube/podman_play.py
says what is changed for it, and why), from the images compose's test builds."""

import base64
import json
import time
import uuid

import pytest

from devmesh import kube_check, kube_secrets
from devmesh.paths import ROOT
from devmesh.ports import free_ports
from tests.compose.conftest import build_base_image, build_once_more_on_failure
from tests.compose.podman import BASE_IMAGE, CONTAINERS_CONF, image_exists, podman_env, run
from tests.kube.manifests import SERVICES, Rendered
from tests.kube.podman_play import LEFT_OUT, STAND_INS, Play

PAUSE_IMAGE = "localhost/shopmesh-test-pause:latest"
OVERLAY = kube_check.KUBE / "overlays" / "dev"
DATABASES_SQL = kube_check.KUBE / "components" / "postgres" / "databases.sql"

# Run inside Envoy's pod: which replicas its clusters route to.
CLUSTERS = """
import json
from devmesh.launcher import cluster_health
print(json.dumps(cluster_health("127.0.0.1:9901")))
"""


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict[str, str]:
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF.replace("[engine]\n", f'[engine]\ninfra_image = "{PAUSE_IMAGE}"\n'))
    found = podman_env(conf)
    if not image_exists(BASE_IMAGE, found):
        build_base_image(found)
    return found


def build_images(env: dict[str, str]) -> None:
    def build(tag: str, context, dockerfile=None):
        extra = ["--file", str(dockerfile)] if dockerfile else []
        build_once_more_on_failure(
            lambda: run(
                ["podman", "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", tag, *extra, str(context)],
                env,
                timeout=900,
            )
        )

    build(PAUSE_IMAGE, ROOT / "tests" / "kube", ROOT / "tests" / "kube" / "pause.Dockerfile")
    build("shopmesh:latest", ROOT)
    build(STAND_INS["postgres"], ROOT / "tests" / "compose", ROOT / "tests" / "compose" / "postgres.Dockerfile")
    build(STAND_INS["mailpit"], ROOT / "tests" / "compose", ROOT / "tests" / "compose" / "smtp-sink.Dockerfile")


def decoded(doc: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in doc["data"].items()}


def eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except RuntimeError as error:
            last = str(error)[-300:]
        time.sleep(1)
    raise TimeoutError(f"{what} after {timeout:.0f}s: {last}")


@pytest.fixture(scope="module")
def played(env, tmp_path_factory):
    """The dev overlay: PostgreSQL and mail stand-ins, then Inventory, Notifications, two
    Order replicas and Envoy, each played from its manifest; the public port on loopback.
    Everything it made is removed afterwards, and the test checks nothing is left."""
    build_images(env)
    data_dir = tmp_path_factory.mktemp("data")
    made = list(kube_secrets.documents({"SHOPMESH_DATA_DIR": str(data_dir)}))
    secrets = {doc["metadata"]["name"]: decoded(doc) for doc in made if doc["kind"] == "Secret"}
    rendered = Rendered(kube_check.render(OVERLAY))
    config_maps = [doc for doc in made if doc["kind"] == "ConfigMap"]
    for name in ("shopmesh-config", "envoy-config"):
        doc = rendered.get("ConfigMap", name)
        if name == "shopmesh-config":
            doc["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = ""  # no Jaeger here (LEFT_OUT)
        config_maps.append(doc)
    assert {d["metadata"]["name"] for d in rendered.all("Deployment")} == {*SERVICES, "envoy", "mailpit", *LEFT_OUT}

    (public_port,) = free_ports(1)
    play = Play(
        f"shopmesh-kube-{uuid.uuid4().hex[:6]}",
        env,
        tmp_path_factory.mktemp("play"),
        public=f"127.0.0.1:{public_port}",
        data_dir=data_dir,
        rendered=rendered,
    )
    try:
        play.create_network()
        database = play.stand_in(
            "postgres",
            "--env",
            "POSTGRES_USER=shopmesh",
            "--env",
            f"POSTGRES_PASSWORD={secrets['postgres']['password']}",
            "--volume",
            f"{DATABASES_SQL}:/docker-entrypoint-initdb.d/10-databases.sql:ro",
        )
        play.mail = play.stand_in("mailpit")
        eventually(
            lambda: (
                play.podman("exec", database, "pg_isready", "--username", "shopmesh", "--dbname", "notifications")
                is not None
            ),
            120,
            "PostgreSQL not ready",
        )
        for name in ("inventory", "notifications", "orders", "envoy"):
            play.pods[name] = play.play(
                rendered.get("Deployment", name), config_maps, secrets, public_port if name == "envoy" else None
            )
        play.containers_of = {name: [f"{pod}-{name}" for pod in pods] for name, pods in play.pods.items()}
        for name in SERVICES:
            port = rendered.env(name)["HEALTH_LISTEN"].rpartition(":")[2]
            for container in play.containers_of[name]:
                eventually(
                    lambda c=container, p=port: play.health(c, f"127.0.0.1:{p}") == "SERVING",
                    120,
                    f"{container} not serving",
                )
        (envoy,) = play.containers_of["envoy"]
        # as its httpGet probe asks (meshkit.probe exits 0 on an HTTP 200)
        eventually(
            lambda: (
                play.podman("exec", envoy, "python", "-m", "meshkit.probe", "http", "http://127.0.0.1:9902/ready")
                is not None
            ),
            120,
            "Envoy not ready",
        )
        wanted = {"orders": [True, True], "inventory": [True], "notifications": [True]}
        eventually(
            lambda: json.loads(play.exec_python(envoy, CLUSTERS)) == wanted,
            120,
            "Envoy does not route to every replica",
        )
        yield play
    finally:
        left = play.down()
        assert left == {"containers": [], "pods": [], "volumes": [], "secrets": [], "networks": []}, left
