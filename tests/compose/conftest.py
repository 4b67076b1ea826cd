"""What the compose test needs on a machine without a registry or a Docker engine:
podman configured for it, a Debian bookworm base image built with debootstrap, and the
whole system up from compose.yaml (tests/helpers/podman.py, tests/helpers/image_builds.py)."""

import uuid
from collections.abc import Iterator

import pytest

from devmesh.paths import ROOT
from devmesh.ports import free_ports
from tests.helpers.image_builds import build_base_image, build_once_more_on_failure
from tests.helpers.podman import (
    BASE_IMAGE,
    CONTAINERS_CONF,
    REPLICAS,
    SINGLE_SERVICES,
    Project,
    image_exists,
    podman_env,
)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment podman runs in here, with the base image built if it is missing."""
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    found = podman_env(conf)
    if not image_exists(BASE_IMAGE, found):
        build_base_image(found)
    return {**found, "BASE_IMAGE": BASE_IMAGE}


@pytest.fixture(scope="module")
def project(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The whole system on PostgreSQL from compose.yaml, with two Order replicas, its
    public port speaking TLS with Envoy's development CA (project.ca); torn down with
    its volumes (the credentials too) afterwards, leaving no container, network or volume."""
    names = ("SHOPMESH_PUBLIC_PORT", "ENVOY_ADMIN_PORT", "MAIL_UI_PORT")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    running = Project(
        f"shopmesh-test-{uuid.uuid4().hex[:6]}",
        {
            **env,
            "SHOPMESH_PUBLIC_PORT": f"127.0.0.1:{ports['SHOPMESH_PUBLIC_PORT']}",
            "ENVOY_ADMIN_PORT": str(ports["ENVOY_ADMIN_PORT"]),
            "MAIL_UI_PORT": f"127.0.0.1:{ports['MAIL_UI_PORT']}",
            "ORDERS_REPLICAS": str(REPLICAS["orders"]),
        },
        public=f"127.0.0.1:{ports['SHOPMESH_PUBLIC_PORT']}",
        admin=f"127.0.0.1:{ports['ENVOY_ADMIN_PORT']}",
    )
    try:
        # The four ShopMesh services share one image: built once here (compose would
        # build it four times in parallel), then the stand-ins; up builds nothing more.
        build_once_more_on_failure(
            lambda: running.podman(
                "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", "shopmesh:latest", str(ROOT), timeout=900
            )
        )
        build_once_more_on_failure(lambda: running.compose("build", "postgres", "mailpit"))
        # Debian's podman (4.3) does not wait for service_healthy: PostgreSQL is brought
        # up and waited for first, as Docker Compose would before starting the services
        # (one started too early exits, and podman 4.3 then fails to start Envoy, which
        # requires it, with "generating dependency graph ... not found in input list")
        running.compose("up", "-d", "postgres", "mailpit")
        running.wait_healthy([running.container("postgres")])
        running.compose("up", "-d")
        # the mesh CA and identities, made before any ShopMesh process started (podman
        # starts it again with each container that requires it: it then renews what is due)
        init = running.container("mesh-identity")
        exit_code = running.podman("wait", init, timeout=60).strip()
        assert exit_code == "0", f"mesh-identity exited {exit_code}:\n{running.logs(init)}"
        running.wait_healthy(
            [running.container(s) for s in SINGLE_SERVICES]
            + [running.container("orders", n) for n in range(1, REPLICAS["orders"] + 1)]
        )
        # healthy containers are not yet routed to: wait until Envoy's own checks pass
        running.wait_routed(REPLICAS)
        # and the services find Envoy's mesh listener by name (podman's DNS, see wait_resolvable)
        running.wait_resolvable(
            "envoy", [running.container(s, n) for s, count in REPLICAS.items() for n in range(1, count + 1)]
        )
        running.ca = running.fetch_ca(tmp_path_factory.mktemp("edge") / "ca.pem")
        yield running
    finally:
        running.compose("down", "--volumes", timeout=300)
        left = running.leftovers()
        running.remove(left)
        assert left == {"containers": [], "networks": [], "volumes": []}, f"compose down left {left}"
