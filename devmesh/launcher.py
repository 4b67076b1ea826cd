"""Starts and stops a whole local mesh: the three services and Envoy, each a
child process with its own address, waited for until healthy and stopped by PID.

`make up` uses it on the contract's ports; the end-to-end tests use it on free
ports, so the mesh they test is started exactly the way users start it.
"""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from devmesh import credentials, envoy_config, mesh_identity, token
from devmesh.paths import ROOT
from devmesh.ports import free_ports
from meshkit import config, mesh_tls, probe

SERVICES = ("inventory", "orders", "notifications")
LISTEN_VARS = {"orders": "ORDERS_LISTEN", "inventory": "INVENTORY_LISTEN", "notifications": "NOTIFICATIONS_LISTEN"}
DEFAULTS = {
    "ORDERS_LISTEN": "127.0.0.1:50051",
    "INVENTORY_LISTEN": "127.0.0.1:50052",
    "NOTIFICATIONS_LISTEN": "127.0.0.1:50053",
    "ENVOY_PUBLIC_LISTEN": "127.0.0.1:8080",
    "ENVOY_PUBLIC_TLS_LISTEN": "127.0.0.1:8443",
    "MESH_ADDRESS": "127.0.0.1:8081",
    "ENVOY_ADMIN_LISTEN": "127.0.0.1:9901",
}
STOP_TIMEOUT_SECONDS = 20.0


class MeshError(Exception):
    """A process of the mesh did not start or did not become healthy."""


def admin_get(admin: str, path: str) -> str:
    """GET from Envoy's admin interface at admin ("host:port")."""
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=2) as reply:
        return reply.read().decode()


def cluster_health(admin: str, clusters: Iterable[str] = SERVICES) -> dict[str, list[bool]]:
    """Each of clusters (default: each service's unary cluster) and, for each of its hosts,
    whether Envoy routes to it (healthy by discovery, and no failed health check or ejection)."""
    wanted = set(clusters)
    health = {}
    for cluster in json.loads(admin_get(admin, "/clusters?format=json"))["cluster_statuses"]:
        if cluster["name"] in wanted:
            health[cluster["name"]] = [
                host.get("health_status", {}).get("eds_health_status") == "HEALTHY"
                and not any(value for flag, value in host.get("health_status", {}).items() if flag.startswith("failed"))
                for host in cluster.get("host_statuses", [])
            ]
    return health


@dataclass(frozen=True)
class Layout:
    """Every address and setting of one mesh, as the environment its processes get."""

    env: Mapping[str, str]

    @classmethod
    def from_env(cls, base: Mapping[str, str]) -> "Layout":
        env = dict(base)
        for name, value in DEFAULTS.items():
            env[name] = env.get(name) or value
        return cls(env)

    @classmethod
    def on_free_ports(cls, base: Mapping[str, str]) -> "Layout":
        chosen = free_ports(len(DEFAULTS))
        return cls.from_env(
            {**base, **{name: f"127.0.0.1:{port}" for name, port in zip(DEFAULTS, chosen, strict=True)}}
        )

    def address(self, name: str) -> str:
        return self.env[name]

    @property
    def public(self) -> str:
        return self.env["ENVOY_PUBLIC_LISTEN"]

    @property
    def public_tls(self) -> str:
        return self.env["ENVOY_PUBLIC_TLS_LISTEN"]

    @property
    def credentials(self) -> credentials.Credentials:
        """The development signing key, JWKS and edge certificate of this mesh's data dir."""
        return credentials.for_env(self.env)

    @property
    def mesh_identity(self) -> mesh_identity.MeshIdentity:
        """The mesh CA and every process's identity in this mesh's data dir."""
        return mesh_identity.for_data_dir(config.data_dir(self.env))

    def tls(self, name: str) -> mesh_tls.MeshTls:
        """The mesh identity called name (a service's, Envoy's or the operator's)."""
        return mesh_tls.MeshTls(self.mesh_identity.directory(name), name)

    def channel(self, address: str, server: str, caller: str = mesh_tls.OPERATOR) -> grpc.Channel:
        """A blocking channel to server (a service's name, or "envoy" for the mesh
        listener) at address, presenting caller's identity."""
        return probe.secure_channel(address, self.tls(caller), server)

    def aio_channel(self, address: str, server: str, caller: str = mesh_tls.OPERATOR) -> grpc.aio.Channel:
        """The same as a grpc.aio channel."""
        return mesh_tls.channel(self.tls(caller), address, peer=server)

    @property
    def mesh(self) -> str:
        return self.env["MESH_ADDRESS"]

    @property
    def admin(self) -> str:
        return self.env["ENVOY_ADMIN_LISTEN"]


class Mesh:
    """One running mesh. Logs go to files in run_dir (or to this process's
    stdout with log_files=False, as `make up` does)."""

    def __init__(self, layout: Layout, run_dir: Path, log_files: bool = True) -> None:
        self.layout = layout
        self.run_dir = run_dir
        self.log_files = log_files
        self.processes: dict[str, subprocess.Popen] = {}
        run_dir.mkdir(parents=True, exist_ok=True)
        # made on first start, renewed near their end; what the environment names
        # instead (a real JWKS or certificate) wins
        self.credentials = credentials.ensure(layout.credentials)
        # the mesh's own CA and each process's identity, for mutual TLS inside the mesh
        self.renew_identities()

    def renew_identities(self) -> None:
        """New certificates for those near their end (`make up` calls it now and then):
        the running processes take them on their next connections."""
        mesh_identity.ensure(self.layout.mesh_identity)

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen:
        output = open(self.log_path(name), "ab") if self.log_files else None
        try:
            # A session of its own: Ctrl-C reaches the launcher only, which
            # then stops every child in order.
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.layout.env, **(env or {})},
                stdout=output,
                stderr=output or None,
                start_new_session=True,
            )
        finally:
            if output:
                output.close()
        self.processes[name] = process
        return process

    def start_service(self, name: str, timeout: float = 30.0) -> None:
        self.start_process(name, [sys.executable, "-m", name], self.layout.address(LISTEN_VARS[name]), timeout)

    def start_process(
        self,
        name: str,
        command: list[str],
        address: str,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        identity: str | None = None,
    ) -> None:
        """Starts any gRPC server process (with env on top of the mesh's) and waits until
        its health check at address says SERVING. identity: the mesh identity it serves
        with (default: the name before any "-", so "orders-2" is another Orders)."""
        self._spawn(name, command, env)
        self._wait_serving(name, address, timeout, identity)

    def _wait_serving(self, name: str, address: str, timeout: float, identity: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        with self.layout.channel(address, identity or name.split("-")[0]) as channel:
            while time.monotonic() < deadline:
                self._check_alive(name)
                if probe.serving(channel):
                    return
                time.sleep(0.05)
        raise MeshError(f"{name} did not become healthy on {address} within {timeout:.0f}s")

    def _check_alive(self, name: str) -> None:
        code = self.processes[name].poll()
        if code is not None:
            tail = self.log_path(name).read_text(errors="replace")[-2000:] if self.log_files else ""
            raise MeshError(f"{name} exited with status {code} while starting\n{tail}")

    def start_envoy(self, timeout: float = 30.0) -> None:
        self._spawn_envoy()
        self.wait_envoy_healthy(timeout)

    def _spawn_envoy(self) -> None:
        env = mesh_identity.under(self.layout.mesh_identity, self.credentials.under(self.layout.env))
        params = replace(envoy_config.params_from_env(env), access_log=str(self.run_dir / "envoy-access.log"))
        config_path = self.run_dir / "envoy.yaml"
        envoy_config.write(params, config_path)
        self.spawn_envoy("envoy", config_path)

    def spawn_envoy(self, name: str, config_path: Path) -> None:
        """An Envoy process called name, on the bootstrap at config_path, logging to its log_path."""
        self._spawn(
            name,
            [
                envoy_config.envoy_binary(),
                "-c",
                str(config_path),
                "--log-level",
                "warn",
                # Several Envoys may run on one machine (tests, `make up`):
                # no shared-memory hot-restart segment to collide on.
                "--disable-hot-restart",
                "--log-path",
                str(self.log_path(name)),
                # the access log reaches its file within a second, not Envoy's default ten
                "--file-flush-interval-msec",
                "1000",
            ],
        )

    def admin_get(self, path: str) -> str:
        return admin_get(self.layout.admin, path)

    def token(
        self,
        email: str = "operator@example.com",
        roles: Sequence[str] = ("operator",),
        ttl_seconds: int = token.DEFAULT_TTL_SECONDS,
    ) -> str:
        """A bearer token this mesh's Envoy accepts (signed with its development key)."""
        return token.mint(
            token.load_signing_key(self.layout.env),
            envoy_config.params_from_env(self.layout.env),
            email,
            roles,
            ttl_seconds,
        )

    def wait_envoy_healthy(self, timeout: float, name: str = "envoy", admin: str | None = None) -> None:
        """Until the Envoy called name (admin interface at admin, default the mesh's) is live
        and its active health checks see every cluster healthy."""
        admin = admin or self.layout.admin
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if admin_get(admin, "/ready").strip() == "LIVE" and self.unhealthy_clusters(admin) == set():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise MeshError(f"{name}'s clusters did not become healthy within {timeout:.0f}s")

    def unhealthy_clusters(self, admin: str | None = None) -> set[str]:
        # the stream clusters too: each health-checks its hosts on its own, so a WatchOrder
        # can find no healthy host while the unary cluster already has one
        health = cluster_health(admin or self.layout.admin, envoy_config.SERVICE_CLUSTERS)
        return {name for name, hosts in health.items() if not hosts or not all(hosts)}

    def start(self, timeout: float = 30.0) -> "Mesh":
        """Every service and Envoy at once (none needs another to start: streams between
        them wait until they can open, and Envoy health-checks each service until it
        serves); returns once all serve and Envoy routes to each."""
        try:
            for name in SERVICES:
                self._spawn(name, [sys.executable, "-m", name])
            self._spawn_envoy()
            for name in SERVICES:
                self._wait_serving(name, self.layout.address(LISTEN_VARS[name]), timeout)
            self.wait_envoy_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop_process(self, name: str) -> int | None:
        """SIGTERM by PID, SIGKILL if it has not exited in time; returns its exit status."""
        return self._stop_all([name]).get(name)

    def _stop_all(self, names: list[str]) -> dict[str, int | None]:
        """SIGTERM to all at once (their drains overlap), then wait for each."""
        stopping = {name: self.processes.pop(name) for name in names if name in self.processes}
        for process in stopping.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in stopping.values():
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {name: process.returncode for name, process in stopping.items()}

    def kill(self, name: str) -> None:
        """SIGKILL by PID, as a crash would: no shutdown code runs."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop(self) -> dict[str, int | None]:
        # Envoy first, so that no new call reaches a service that is draining.
        return {**self._stop_all(["envoy"]), **self._stop_all(list(reversed(self.processes)))}

    def __enter__(self) -> "Mesh":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
