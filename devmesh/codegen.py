"""`make gen`: writes gen/ from protos/ with grpc_tools' protoc.

Per proto: the messages (`*_pb2.py`) with their type stubs (`*_pb2.pyi`, protoc's
own), the gRPC stubs and servicers (`*_pb2_grpc.py`) with theirs (`*_pb2_grpc.pyi`,
mypy-protobuf's protoc-gen-mypy_grpc), and Envoy's descriptor set.

Google's imports (google/api, google/rpc, google/type) are read from the
installed googleapis-common-protos package, google/protobuf from grpc_tools.
`python -m devmesh.codegen --check` fails when gen/ differs from a fresh run.
"""

import argparse
import filecmp
import shutil
import sys
import sysconfig
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
# Options of protoc-gen-mypy_grpc. Its default stubs type both sync and grpc.aio use:
# clients use either kind of channel, and a servicer's methods are `async def`s taking a
# grpc.aio.ServicerContext or plain defs, each checked against its request and response
# messages. generate_concrete_servicer_stubs: the generated servicer answers UNIMPLEMENTED
# for every method not overridden, so a servicer of a few methods is no abstract class.
# quiet: no line per file written.
MYPY_GRPC_OPTIONS = "generate_concrete_servicer_stubs,quiet"


def googleapis_root() -> Path:
    """Where googleapis-common-protos keeps Google's .proto files."""
    return Path(google.api.__path__[0]).parent.parent


def wellknown_root() -> Path:
    """Where grpc_tools keeps google/protobuf's .proto files."""
    return Path(grpc_tools.__file__).parent / "_proto"


def mypy_grpc_plugin() -> Path:
    """protoc-gen-mypy_grpc, installed by mypy-protobuf beside this interpreter."""
    plugin = Path(sysconfig.get_path("scripts")) / "protoc-gen-mypy_grpc"
    if not plugin.is_file():
        raise SystemExit(f"{plugin} is missing: run `make install` (mypy-protobuf)")
    return plugin


def our_protos() -> list[str]:
    """ShopMesh's .proto files, relative to protos/."""
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
    _protoc(
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc_plugin()}",
        f"--mypy_grpc_out={MYPY_GRPC_OPTIONS}:{out}",
        *files,
    )
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
