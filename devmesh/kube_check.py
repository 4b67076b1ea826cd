"""`make kube-check`: deploy/kubernetes rendered and checked without a cluster.

    python -m devmesh.kube_check [--install-tools]

Every overlay, and the base with every combination of components, is rendered with
`kubectl kustomize`; the output is validated strictly against the Kubernetes schemas of the
oldest and newest versions ShopMesh supports (kubernetes-validate; a warning, such as an
unknown apiVersion, fails too), then linted by checkov with deploy/kubernetes/checkov.yaml's
commented skip list. The linters live in .venv/kube-tools (--install-tools puts them there,
at the versions pyproject.toml's [tool.shopmesh] names).
"""

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

import yaml

from devmesh.paths import ROOT

KUBE = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".venv" / "kube-tools"
# gRPC probes are GA from 1.27; the newest is the newest whose schemas kubernetes-validate has
OLDEST, NEWEST = "1.27.0", "1.37.0"
# what a combination of components is rendered into (overlays set their own)
CHECK_NAMESPACE = "shopmesh-check"


def overlays() -> list[Path]:
    return sorted(path for path in (KUBE / "overlays").iterdir() if (path / "kustomization.yaml").exists())


def components() -> list[Path]:
    return sorted(path for path in (KUBE / "components").iterdir() if (path / "kustomization.yaml").exists())


def kustomize(directory: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError(
            "kubectl is needed to render the manifests (kubectl kustomize): install it from "
            "https://kubernetes.io/docs/tasks/tools/ or your distribution's packages"
        )
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


def documents(rendered: str) -> list[dict]:
    """The manifests in kustomize's output."""
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def render(directory: Path) -> list[dict]:
    return documents(kustomize(directory))


def variants() -> Iterator[tuple[str, str]]:
    """(name, rendered YAML) of every overlay, then of the base with each combination of
    components (none included), in a namespace of its own."""
    for overlay in overlays():
        yield f"overlay-{overlay.name}", kustomize(overlay)
    found = components()
    with tempfile.TemporaryDirectory(prefix="shopmesh-kustomize-") as workdir:
        for count in range(len(found) + 1):
            for chosen in itertools.combinations(found, count):
                name = "base" + "".join(f"+{path.name}" for path in chosen)
                directory = Path(workdir) / name
                directory.mkdir()
                (directory / "kustomization.yaml").write_text(
                    yaml.safe_dump(
                        {
                            "apiVersion": "kustomize.config.k8s.io/v1beta1",
                            "kind": "Kustomization",
                            # kustomize takes relative paths only
                            "namespace": CHECK_NAMESPACE,
                            "resources": [os.path.relpath(KUBE / "base", directory)],
                            "components": [os.path.relpath(path, directory) for path in chosen],
                        }
                    )
                )
                yield name, kustomize(directory)


def tool(name: str) -> str:
    path = TOOLS / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: python -m devmesh.kube_check --install-tools")
    return str(path)


def install_tools() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["shopmesh"]["kube-check-tools"]
    if not (TOOLS / "bin" / "python").exists():
        venv.create(TOOLS, with_pip=True)
    subprocess.run(
        [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        check=True,
    )


def validate(files: list[Path], version: str) -> list[str]:
    """What kubernetes-validate finds wrong, its warnings included."""
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0 and not problems:
        problems = [f"kubernetes-validate exited {result.returncode}"]
    return problems


def lint(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            tool("checkov"),
            "--config-file",
            str(KUBE / "checkov.yaml"),
            "--directory",
            str(directory),
            "--skip-download",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def check() -> int:
    failed = False
    with tempfile.TemporaryDirectory(prefix="shopmesh-kube-check-") as workdir:
        files = []
        for name, text in variants():
            path = Path(workdir) / f"{name}.yaml"
            path.write_text(text)
            files.append(path)
        print(f"rendered {len(files)} variants: {', '.join(path.stem for path in files)}")
        for version in (OLDEST, NEWEST):
            problems = validate(files, version)
            print(f"Kubernetes {version} schemas, strict: {'ok' if not problems else 'FAILED'}")
            for problem in problems:
                print(f"  {problem}")
            failed |= bool(problems)
        linted = lint(Path(workdir))
        print(f"checkov: {'ok' if linted.returncode == 0 else 'FAILED'}")
        if linted.returncode != 0:
            print(linted.stdout[-20000:] + linted.stderr[-5000:])
        failed |= linted.returncode != 0
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.kube_check", description=__doc__.splitlines()[0])
    parser.add_argument("--install-tools", action="store_true", help="install the linters, then stop")
    args = parser.parse_args(argv)
    if args.install_tools:
        install_tools()
        return 0
    try:
        return check()
    except (RuntimeError, FileNotFoundError) as error:
        print(f"kube_check: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
