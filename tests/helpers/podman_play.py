"""deploy/kubernetes's dev overlay as `podman kube play` (4.3) can run it, and nothing more
changed than it needs. What podman lacks, and what is done about each:

- No Services, no cluster DNS: each Deployment is played on its own with its Service's
  name as a network alias (--network NET:alias=orders), so both Order replicas answer to
  `orders`, as a headless Service's DNS would (Envoy's DNS cluster sees both).
- No StatefulSet, and no registry to pull postgres, Mailpit or Jaeger from: the overlay's
  database and mail catcher are left out, and local stand-ins (the images `make
  compose-test` builds) run beside the pods under their Service names; Jaeger is left out
  and with it the collector's address.
- A Secret volume holds a podman secret's keys as written, and podman ignores `items` and
  `defaultMode`: each one becomes a podman secret of its own whose keys are the files the
  manifest names (cert.pem, key.pem, ca.pem; url), marked `optional: false` (without it
  podman 4.3 crashes on the volume).
- Init containers run only in a pod whose restartPolicy is not Always: OnFailure here.
- Every containerPort is published on the host: only Envoy's public port is, on loopback.
- Volumes (emptyDir, ConfigMap) are podman volumes shared by name across pods: each gets
  a name of its own.
- Probes, preStop, PDB, HPA and NetworkPolicy are ignored: the test asks the probe ports
  itself, from inside each pod.
- Every pod's infra container needs catatonit, which this machine need not have: an infra
  image is built from it (tests/kube/pause.Dockerfile) and named in containers.conf.
"""

import base64
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devmesh import kube_check
from tests.helpers.kube_manifests import Rendered
from tests.helpers.podman import run

# what is played, and the databases its PostgreSQL stand-in makes at its first start
OVERLAY = kube_check.KUBE / "overlays" / "dev"
DATABASES_SQL = kube_check.KUBE / "components" / "postgres" / "databases.sql"
# the images `make compose-test` builds for the third-party ones no registry here serves
STAND_INS = {"postgres": "shopmesh-test-postgres:latest", "mailpit": "shopmesh-test-smtp-sink:latest"}
# what the dev overlay runs that no stand-in replaces: left out
LEFT_OUT = ("jaeger",)
# Run with the image's Python inside a container: one standard health check in plaintext,
# as a kubelet's gRPC probe asks; prints the status (SERVING, ...) or the error's code.
HEALTH = """
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as error:
        print(error.code().name)
    else:
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
"""
# Run inside Envoy's pod: which replicas its clusters route to.
CLUSTERS = """
import json
from devmesh.launcher import cluster_health
print(json.dumps(cluster_health("127.0.0.1:9901")))
"""


def decoded(secret: dict) -> dict[str, str]:
    """A rendered Secret's data, base64-decoded to text."""
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


@dataclass
class Play:
    """The dev overlay on one podman network; every name it makes starts with prefix."""

    prefix: str
    env: dict[str, str]
    workdir: Path
    network: str = ""
    # where Envoy's public port is published, and the data directory whose credentials the
    # Secrets came from (its CA and signing key: for the clients)
    public: str = ""
    data_dir: Path | None = None
    rendered: Rendered | None = None
    # pod names, and their ShopMesh containers' names, by Deployment; the mail catcher's container
    pods: dict[str, list[str]] = field(default_factory=dict)
    containers_of: dict[str, list[str]] = field(default_factory=dict)
    mail: str = ""
    files: list[Path] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def podman(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return run(["podman", *args], self.env, timeout, check)

    def create_network(self) -> None:
        self.network = f"{self.prefix}-net"
        self.podman("network", "create", self.network)

    def stand_in(self, service: str, *args: str) -> str:
        """A stand-in container on the network, answering to service's name."""
        name = f"{self.prefix}-{service}"
        self.containers.append(name)
        self.podman(
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            self.network,
            "--network-alias",
            service,
            *args,
            STAND_INS[service],
        )
        return name

    def secret(self, name: str, files: dict[str, str]) -> str:
        """A podman secret called name (one of this play's) whose volume holds files (name -> text)."""
        path = self.workdir / f"{name}.yaml"
        path.write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": files})
        )
        path.chmod(0o600)
        self.podman("secret", "create", name, str(path))
        self.secrets.append(name)
        return name

    def play(
        self,
        deployment: dict,
        config_maps: list[dict],
        secrets: dict[str, dict[str, str]],
        public_port: int | None = None,
    ) -> list[str]:
        """Plays one Deployment (transformed by for_podman) with its Service's name as alias;
        returns its pods' names."""
        alias = deployment["metadata"]["name"]
        played = self.for_podman(deployment, secrets, public_port)
        path = self.workdir / f"{played['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump_all([*self.config_maps(config_maps), played], sort_keys=False))
        self.files.append(path)
        self.podman("kube", "play", "--network", f"{self.network}:alias={alias}", str(path), timeout=600)
        return [f"{played['metadata']['name']}-pod-{n}" for n in range(played["spec"]["replicas"])]

    def config_maps(self, config_maps: list[dict]) -> list[dict]:
        renamed = copy.deepcopy(config_maps)
        for doc in renamed:
            doc["metadata"]["name"] = f"{self.prefix}-{doc['metadata']['name']}"
        return renamed

    def for_podman(self, deployment: dict, secrets: dict[str, dict[str, str]], public_port: int | None) -> dict:
        doc = copy.deepcopy(deployment)
        name = doc["metadata"]["name"]
        doc["metadata"]["name"] = f"{self.prefix}-{name}"
        pod = doc["spec"]["template"]["spec"]
        pod["restartPolicy"] = "OnFailure"
        renamed = {}
        for volume in pod.get("volumes", []):
            new = f"{self.prefix}-{name}-{volume['name']}"
            renamed[volume["name"]] = new
            volume["name"] = new
            if "secret" in volume:
                source = secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": key, "path": key} for key in source]
                volume["secret"] = {
                    "secretName": self.secret(new, {i["path"]: source[i["key"]] for i in items}),
                    "optional": False,
                }
            elif "configMap" in volume:
                volume["configMap"] = {"name": f"{self.prefix}-{volume['configMap']['name']}", "optional": False}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            for mount in container.get("volumeMounts", []):
                mount["name"] = renamed[mount["name"]]
            for source in container.get("envFrom", []):
                source["configMapRef"]["name"] = f"{self.prefix}-{source['configMapRef']['name']}"
            container.pop("ports", None)
        if public_port is not None:
            (envoy,) = pod["containers"]
            envoy["ports"] = [{"containerPort": 8443, "hostPort": public_port, "hostIP": "127.0.0.1"}]
        return doc

    def exec_python(self, container: str, code: str, *args: str, check: bool = True) -> str:
        return self.podman("exec", container, "python", "-c", code, *args, check=check)

    def health(self, container: str, address: str) -> str:
        """What a plaintext health check from inside container to address gets (HEALTH)."""
        return self.exec_python(container, HEALTH, address).strip()

    def logs(self, container: str) -> str:
        return self.podman("logs", container, check=False)

    def down(self) -> dict[str, list[str]]:
        """Removes everything the play made; returns what is still there (nothing, if all went)."""
        for path in reversed(self.files):
            self.podman("kube", "down", str(path), check=False)
        for container in self.containers:
            self.podman("rm", "--force", "--volumes", container, check=False)
        for secret in self.secrets:
            self.podman("secret", "rm", secret, check=False)
        for volume in self.volumes():
            self.podman("volume", "rm", "--force", volume, check=False)
        if self.network:
            self.podman("network", "rm", "--force", self.network, check=False)
        return self.leftovers()

    def volumes(self) -> list[str]:
        return [v for v in self.podman("volume", "ls", "--format", "{{.Name}}").split() if v.startswith(self.prefix)]

    def leftovers(self) -> dict[str, list[str]]:
        names = json.loads(self.podman("ps", "--all", "--format", "json") or "[]")
        return {
            "containers": [n for c in names for n in c.get("Names", []) if n.startswith(self.prefix)],
            "pods": [p for p in self.podman("pod", "ls", "--format", "{{.Name}}").split() if p.startswith(self.prefix)],
            "volumes": self.volumes(),
            "secrets": [
                s for s in self.podman("secret", "ls", "--format", "{{.Name}}").split() if s.startswith(self.prefix)
            ],
            "networks": [
                n for n in self.podman("network", "ls", "--format", "{{.Name}}").split() if n.startswith(self.prefix)
            ],
        }
