"""Podman and podman-compose as the compose and Kubernetes tests drive them; for compose,
the real compose.yaml plus tests/compose/override.yaml, under a project name of its own."""

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devmesh.launcher import admin_get, cluster_health
from devmesh.paths import ROOT, executable

# Podman here needs runc and higher limits than its defaults (see README).
CONTAINERS_CONF = """\
[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""
BASE_IMAGE = "localhost/shopmesh-test-base:bookworm"
COMPOSE_FILES = [ROOT / "compose.yaml", ROOT / "tests" / "compose" / "override.yaml"]
# the development CA that Envoy's certificate chains to, in its envoy-credentials volume
ENVOY_CA = "/var/lib/shopmesh/credentials/tls/ca.pem"
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"
# what the project runs: two Order replicas, one of the others
REPLICAS = {"orders": 2, "inventory": 1, "notifications": 1}
# the project's containers besides the Order replicas, healthy before a test starts
SINGLE_SERVICES = ("postgres", "inventory", "notifications", "envoy")


def sink_emails(log: str) -> list[dict]:
    """What the SMTP sink stand-in (smtp_sink.py) accepted, from its log: one JSON line per email."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "message_id" in entry:
            found.append(entry)
    return found


def podman_env(conf: Path) -> dict[str, str]:
    """This process's environment with podman reading conf (CONTAINERS_CONF)."""
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def run(command: list[str], env: dict[str, str], timeout: float = 600, check: bool = True) -> str:
    """Runs command from the repository root; its output, or RuntimeError with its tail when it fails and check."""
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def image_exists(name: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", name], env=env, check=False).returncode == 0


@dataclass
class Project:
    """One compose project; every container and network it makes carries its name."""

    name: str
    env: dict[str, str]
    # where Envoy's public listener and admin are published on this machine
    public: str
    admin: str
    # the CA file a client trusts for the public port (set once Envoy has made it)
    ca: Path | None = None
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def compose(self, *args: str, timeout: float = 900, overrides: Sequence[Path] = ()) -> str:
        """podman-compose on this project; overrides: more compose files after ours."""
        files = [arg for path in [*COMPOSE_FILES, *overrides] for arg in ("-f", str(path))]
        return run([executable("podman-compose"), *files, "-p", self.name, *args], self.env, timeout)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project that still exist."""
        label = f"label=io.podman.compose.project={self.name}"
        return {
            "containers": run(["podman", "ps", "--all", "--quiet", "--filter", label], self.env).split(),
            "networks": [
                n
                for n in run(["podman", "network", "ls", "--format", "{{.Name}}"], self.env).split()
                if n.startswith(f"{self.name}_")
            ],
            "volumes": [
                v
                for v in run(["podman", "volume", "ls", "--format", "{{.Name}}"], self.env).split()
                if v.startswith(f"{self.name}_")
            ],
        }

    def remove(self, leftovers: dict[str, list[str]]) -> None:
        """Removes what compose down left, so a failed run does not pile up."""
        for container in leftovers["containers"]:
            run(["podman", "rm", "--force", "--volumes", container], self.env, check=False)
        for network in leftovers["networks"]:
            run(["podman", "network", "rm", "--force", network], self.env, check=False)
        for volume in leftovers["volumes"]:
            run(["podman", "volume", "rm", "--force", volume], self.env, check=False)

    def container(self, service: str, replica: int = 1) -> str:
        return f"{self.name}_{service}_{replica}"

    def wait_healthy(self, containers: list[str], timeout: float = 300) -> None:
        """Runs the healthchecks itself (podman has no timer for them without
        systemd) until every container reports healthy."""
        deadline = time.monotonic() + timeout
        pending = list(containers)
        while pending and time.monotonic() < deadline:
            for container in list(pending):
                checked = subprocess.run(
                    ["podman", "healthcheck", "run", container],
                    env=self.env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if checked.returncode == 0:
                    pending.remove(container)
            if pending:
                time.sleep(2)
        if pending:
            logs = {c: run(["podman", "logs", "--tail", "30", c], self.env, check=False) for c in pending}
            raise TimeoutError(f"not healthy after {timeout:.0f}s: {pending}\n{logs}")

    def wait_routed(self, replicas: dict[str, int], timeout: float = 60) -> None:
        """Until Envoy (its admin published on self.admin) routes to every replica."""
        deadline = time.monotonic() + timeout
        wanted = {name: [True] * count for name, count in replicas.items()}
        health: dict = {}
        while time.monotonic() < deadline:
            try:
                health = cluster_health(self.admin)
            except OSError:
                health = {}
            if health == wanted:
                return
            time.sleep(0.5)
        raise TimeoutError(f"Envoy does not route to every replica after {timeout:.0f}s: {health}")

    def wait_resolvable(self, name: str, containers: list[str], timeout: float = 120) -> None:
        """Until name resolves inside each of containers. With Debian's podman, for up to a
        minute after a container joins the network, the others' queries may not reach its
        DNS server (the bridge seems to take the newcomer's MAC address while their ARP
        entries still name the old one), and a gRPC channel whose lookup failed meanwhile
        waits 30 s before it looks again."""
        deadline = time.monotonic() + timeout
        pending = list(containers)
        while pending and time.monotonic() < deadline:
            for container in list(pending):
                looked_up = subprocess.run(
                    ["podman", "exec", container, "python", "-c", f"import socket; socket.getaddrinfo({name!r}, None)"],
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if looked_up.returncode == 0:
                    pending.remove(container)
            if pending:
                time.sleep(1)
        if pending:
            raise TimeoutError(f"{name} does not resolve after {timeout:.0f}s in {pending}")

    def fetch_ca(self, into: Path) -> Path:
        """Envoy's development CA, taken out the way compose.yaml's header says
        (`compose exec -T envoy cat ...`), written to into."""
        out = self.compose("exec", "-T", "envoy", "cat", ENVOY_CA, timeout=120)
        if PEM_BEGIN not in out or PEM_END not in out:
            raise RuntimeError(f"no certificate in the output of cat {ENVOY_CA}: {out[-500:]!r}")
        into.write_text(out[out.index(PEM_BEGIN) : out.rindex(PEM_END) + len(PEM_END)] + "\n")
        return into

    def token(self, email: str, roles: str = "customer") -> str:
        """A token minted inside the Envoy container with the key it verifies against
        (`python -m devmesh.token`), once per email and roles."""
        if (email, roles) not in self._tokens:
            out = self.podman(
                "exec", self.container("envoy"), "python", "-m", "devmesh.token", "--email", email, "--roles", roles
            )
            self._tokens[email, roles] = out.strip()
        return self._tokens[email, roles]

    def stats(self, contains: str) -> dict[str, int]:
        """Envoy's counters and gauges (its admin's /stats) whose names contain contains."""
        found = {}
        for line in admin_get(self.admin, f"/stats?filter={contains}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                found[name] = int(value)
        return found

    def served_certificates(self) -> list[dict]:
        """The certificates Envoy presents now (its admin's /certs)."""
        certs = json.loads(admin_get(self.admin, "/certs"))["certificates"]
        return [chain for entry in certs for chain in entry.get("cert_chain", [])]

    def python(self, container: str, code: str, *args: str) -> str:
        """Runs code with the image's Python inside container (as its user, with its environment)."""
        return self.podman("exec", container, "python", "-c", code, *args)

    def logs(self, container: str) -> str:
        result = subprocess.run(
            ["podman", "logs", container], env=self.env, capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr

    def podman(self, *args: str, timeout: float = 120) -> str:
        return run(["podman", *args], self.env, timeout)
