"""A PostgreSQL server of a test's own, on a free loopback port, that the test may
restart under load without disturbing the shared server other tests use.

initdb refuses to run as root, so as root every command runs as the `postgres` system
user, in a data directory that user owns. The server is stopped by its PID, always.
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from devmesh.ports import free_port
from devmesh.postgres import PostgresServer

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
STOP_SECONDS = 30.0


def unavailable_reason() -> str | None:
    """Why no private server can run here, or None."""
    if not BIN_DIRS:
        return "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


class PrivatePostgres:
    """One server in a temporary directory: start(), restart() under load, stop() by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="shopmesh-pg-"))
        self.data = self.base / "data"
        self.server = PostgresServer(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(BIN_DIRS[-1] / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        # Output to a file, not a pipe: the server pg_ctl leaves running would hold a pipe open.
        with open(self.base / "commands.log", "ab") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=60)
        if result.returncode != 0:
            tail = (self.base / "commands.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{tool} failed with status {result.returncode}:\n{tail}")

    def start(self) -> "PrivatePostgres":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base} "
            "-c fsync=off -c full_page_writes=off"  # a throwaway server: durability costs time here
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.base / "log"),
            "-o",
            options,
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
            action,
        )

    def restart(self, down_seconds: float) -> None:
        """A fast shutdown (every connection terminated), down_seconds without a server, a start."""
        self._pg_ctl("stop")
        time.sleep(down_seconds)
        self._pg_ctl("start")

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), SIGKILL if it does not end in time; then its files go."""
        self.server.close()
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            _signal(pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_SECONDS
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_file.exists():
                _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
        os.kill(pid, sig)
