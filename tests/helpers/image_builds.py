"""The container images the compose and Kubernetes tests run, built on a machine without
a registry or a Docker engine: a Debian bookworm base made with debootstrap, then the
images on it."""

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from devmesh.paths import ROOT
from tests.helpers.podman import BASE_IMAGE, run
from tests.helpers.podman_play import STAND_INS

DEFAULT_MIRROR = "http://deb.debian.org/debian"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
# the infra image of every played pod (podman's own needs catatonit, which this machine need not have)
PAUSE_IMAGE = "localhost/shopmesh-test-pause:latest"


def debian_mirror() -> str:
    """The mirror apt uses on this machine (deb822 or one-line sources)."""
    for sources in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return parts[1]
    return DEFAULT_MIRROR


def build_base_image(env: dict[str, str]) -> None:
    """Debian bookworm (python3 is 3.11) with the machine's apt settings and
    local certificate authorities, so builds on it reach what the machine reaches."""
    with tempfile.TemporaryDirectory(prefix="shopmesh-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            env,
            timeout=900,
        )
        for setting in Path("/etc/apt/apt.conf.d").glob("*"):
            if not (rootfs / "etc/apt/apt.conf.d" / setting.name).exists():
                shutil.copy(setting, rootfs / "etc/apt/apt.conf.d" / setting.name)
        for authority in LOCAL_CAS.glob("*.crt"):
            shutil.copy(authority, rootfs / "usr/local/share/ca-certificates" / authority.name)
        run(["chroot", str(rootfs), "update-ca-certificates"], env)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None  # a pipe, as asked for
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr}")


def build_once_more_on_failure(build: Callable[[], object]) -> None:
    """Image builds download from PyPI and Debian, whose reachability is not what
    this test is about: a failed build (say, a DNS hiccup) gets one more try."""
    try:
        build()
    except RuntimeError as error:
        print(f"build failed, trying once more: {str(error)[-500:]}")
        build()


def build_play_images(env: dict[str, str]) -> None:
    """What the Kubernetes play runs: the pods' infra image, ShopMesh's image and the
    stand-ins for PostgreSQL and Mailpit, each on the base image."""

    def build(tag: str, context: Path, dockerfile: Path | None = None) -> None:
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
