"""`make gen`: writes gen/ from protos/ with grpc_tools' protoc.

Google's imports (google/api, google/rpc, google/type) are read from the
installed googleapis-common-protos package, google/protobuf from grpc_tools.
`python -m devmesh.codegen --check` fails when gen/ differs from a fresh run.
"""

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

from devmesh.paths import DESCRIPTOR_SET, GEN, PROTO_DEPS, PROTOS

# Google protos our files import, plus the google.rpc detail types that
# Envoy's transcoder needs in its descriptor set to render error details.
GOOGLE_PROTOS = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/field_behavior.proto",
    "google/type/money.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
)
DESCRIPTOR_EXTRAS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def googleapis_root() -> Path:
    return Path(google.api.__path__[0]).parent.parent


def wellknown_root() -> Path:
    return Path(grpc_tools.__file__).parent / "_proto"


def our_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def _protoc(*args: str) -> None:
    includes = [f"-I{PROTOS}", f"-I{googleapis_root()}", f"-I{wellknown_root()}"]
    code = protoc.main(["protoc", *includes, *args])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def generate(out: Path) -> None:
    """Writes the Python modules, type stubs and Envoy descriptor set to out."""
    out.mkdir(parents=True, exist_ok=True)
    files = our_protos()
    _protoc(f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *files)
    descriptor = out / DESCRIPTOR_SET.relative_to(GEN)
    _protoc(
        f"--descriptor_set_out={descriptor}",
        "--include_imports",
        "--include_source_info",
        *files,
        *DESCRIPTOR_EXTRAS,
    )
    # Regular packages, so that `pip install -e .` and mypy find them.
    for directory in [out / "shopmesh", *(out / "shopmesh").rglob("*")]:
        if directory.is_dir() and directory.name != "__pycache__":
            (directory / "__init__.py").touch()
    # the stubs are typed (PEP 561): the client package (clients/python) ships this mark
    (out / "shopmesh" / "py.typed").touch()


def link_proto_deps() -> None:
    """Links the Google protos into .protodeps/ so that plain `buf lint` resolves them."""
    root = googleapis_root()
    for name in GOOGLE_PROTOS:
        link = PROTO_DEPS / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(root / name)


def differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths of files that differ, are missing or are extra."""

    def files(base: Path) -> set[str]:
        return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts}

    want, have = files(expected), files(actual)
    changed = [name for name in sorted(want & have) if not filecmp.cmp(expected / name, actual / name, shallow=False)]
    return sorted(want ^ have) + changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if gen/ is stale")
    parser.add_argument("--deps", action="store_true", help="only link .protodeps/")
    args = parser.parse_args()
    link_proto_deps()
    if args.deps:
        return
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = differences(Path(tmp), GEN)
        if stale:
            sys.exit("gen/ is stale, run `make gen`: " + ", ".join(stale))
        return
    shutil.rmtree(GEN, ignore_errors=True)
    generate(GEN)


if __name__ == "__main__":
    main()
