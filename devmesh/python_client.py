"""`make clients` (Python): builds the shopmesh-api wheel into dist/, the same bytes for
the same sources, without network.

The project (clients/python) is copied with its link to gen/shopmesh resolved, the .proto
files of protos/ put beside the modules made from them, and built there with the venv's
setuptools (no isolated build environment to download); every file
in the wheel gets the time of the last commit (SOURCE_DATE_EPOCH), so two builds of one
commit are identical.

    python -m devmesh.python_client [--out dist]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devmesh.paths import PROTOS, ROOT

PROJECT = ROOT / "clients" / "python"
# 1980-01-01, the earliest time a zip entry can hold: when the sources are not in git
EARLIEST_ZIP_TIME = 315532800


def source_date_epoch() -> int:
    """The time of the last commit, or EARLIEST_ZIP_TIME outside a git checkout."""
    found = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    text = found.stdout.strip()
    return max(int(text), EARLIEST_ZIP_TIME) if found.returncode == 0 and text.isdigit() else EARLIEST_ZIP_TIME


def build(out: Path) -> Path:
    """The wheel, written to out; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shopmesh-api-") as tmp:
        project = Path(tmp) / "python"
        shutil.copytree(
            PROJECT,
            project,
            symlinks=False,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"),
        )
        # each .proto beside the modules generated from it (shopmesh/orders/v1/orders.proto)
        for proto in PROTOS.rglob("*.proto"):
            shutil.copyfile(proto, project / "src" / proto.relative_to(PROTOS))
        built = Path(tmp) / "wheels"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(source_date_epoch()), "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(built),
                str(project),
            ],
            env=env,
            check=True,
        )
        [wheel] = built.glob("*.whl")
        target = out / wheel.name
        shutil.copyfile(wheel, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.python_client", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the wheel goes (default dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
