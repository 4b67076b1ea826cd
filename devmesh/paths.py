"""Where things live in the repository."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
DESCRIPTOR_SET = GEN / "shopmesh.pb"
ENVOY_DIR = ROOT / "envoy"
PROTO_DEPS = ROOT / ".protodeps"
# the tools npm installs (package.json): buf, protoc-gen-es, tsc, esbuild
NODE_BIN = ROOT / "node_modules" / ".bin"


def executable(name: str) -> str | None:
    """A command installed in this Python's environment (envoy, py-spy), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)
