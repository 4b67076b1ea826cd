"""Installs the Debian packages a make target needs, once: only those whose
command is missing, as root or through sudo.

    python -m devmesh.system_packages h2load=nghttp2-client wrk /usr/lib/podman/netavark=netavark
"""

import os
import shutil
import subprocess
import sys


def missing(wanted: dict[str, str]) -> list[str]:
    """command (a name on PATH, or a path) -> package; the packages whose command is missing."""
    return sorted({package for command, package in wanted.items() if not _present(command)})


def _present(command: str) -> bool:
    return os.path.exists(command) if "/" in command else shutil.which(command) is not None


def install(packages: list[str]) -> None:
    """apt-get install of packages, as root or through sudo (else it exits, naming them)."""
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "--non-interactive"]
    else:
        sys.exit(f"missing Debian packages: {' '.join(packages)} (install them as root: apt-get install ...)")
    apt = [*prefix, "apt-get", "install", "--yes", "--quiet", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, check=False).returncode != 0:
        # the package lists may be missing or stale on a fresh machine
        subprocess.run([*prefix, "apt-get", "update", "--quiet"], env=env, check=True)
        subprocess.run(apt, env=env, check=True)


def wanted_package(arg: str) -> tuple[str, str]:
    """'command=package' -> (command, package); a bare name is both the command and its package."""
    command, equals, package = arg.partition("=")
    return (command, package) if equals else (arg, arg)


def main(argv: list[str]) -> int:
    wanted = dict(wanted_package(arg) for arg in argv)
    needed = missing(wanted)
    if needed:
        print(f"installing Debian packages: {' '.join(needed)}", flush=True)
        install(needed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
