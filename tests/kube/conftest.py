"""`make kube-test`: the dev overlay of deploy/kubernetes played with podman (tests/helpers/podman_play.py
says what is changed for it, and why), from the images compose's test builds."""

import json
import uuid
from collections.abc import Iterator

import pytest

from devmesh import kube_check, kube_secrets
from devmesh.ports import free_ports
from tests.helpers.image_builds import PAUSE_IMAGE, build_base_image, build_play_images
from tests.helpers.kube_manifests import SERVICES, Rendered
from tests.helpers.podman import BASE_IMAGE, CONTAINERS_CONF, image_exists, podman_env
from tests.helpers.podman_play import CLUSTERS, DATABASES_SQL, LEFT_OUT, OVERLAY, Play, decoded
from tests.helpers.waiting import until


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment podman runs in here, with the pods' infra image named and the base
    image built if it is missing."""
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF.replace("[engine]\n", f'[engine]\ninfra_image = "{PAUSE_IMAGE}"\n'))
    found = podman_env(conf)
    if not image_exists(BASE_IMAGE, found):
        build_base_image(found)
    return found


@pytest.fixture(scope="module")
def played(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Play]:
    """The dev overlay: PostgreSQL and mail stand-ins, then Inventory, Notifications, two
    Order replicas and Envoy, each played from its manifest; the public port on loopback.
    Everything it made is removed afterwards, and the test checks nothing is left."""
    build_play_images(env)
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
        until(
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
                until(
                    lambda c=container, p=port: play.health(c, f"127.0.0.1:{p}") == "SERVING",
                    120,
                    f"{container} not serving",
                )
        (envoy,) = play.containers_of["envoy"]
        # as its httpGet probe asks (meshkit.probe exits 0 on an HTTP 200)
        until(
            lambda: (
                play.podman("exec", envoy, "python", "-m", "meshkit.probe", "http", "http://127.0.0.1:9902/ready")
                is not None
            ),
            120,
            "Envoy not ready",
        )
        wanted = {"orders": [True, True], "inventory": [True], "notifications": [True]}
        until(
            lambda: json.loads(play.exec_python(envoy, CLUSTERS)) == wanted,
            120,
            "Envoy does not route to every replica",
        )
        yield play
    finally:
        left = play.down()
        assert left == {"containers": [], "pods": [], "volumes": [], "secrets": [], "networks": []}, left
