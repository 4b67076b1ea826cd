"""Where things live in the repository."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
DESCRIPTOR_SET = GEN / "shopmesh.pb"
ENVOY_DIR = ROOT / "envoy"
PROTO_DEPS = ROOT / ".protodeps"
