"""gen/ is committed; it must be exactly what `make gen` makes of protos/."""

from pathlib import Path

from devmesh import codegen
from devmesh.paths import GEN


def test_gen_matches_the_protos(tmp_path: Path):
    codegen.generate(tmp_path)
    stale = codegen.differences(tmp_path, GEN)
    assert not stale, f"gen/ is stale, run `make gen`: {stale}"


def test_descriptor_set_carries_the_error_detail_types(tmp_path: Path):
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString((GEN / "shopmesh.pb").read_bytes()).file
    names = {f.name for f in files}
    assert {"google/rpc/error_details.proto", "google/rpc/status.proto", "shopmesh/orders/v1/orders.proto"} <= names
    orders = next(f for f in files if f.name == "shopmesh/orders/v1/orders.proto")
    assert orders.source_code_info.location, "source info is needed for comments in reflection and docs"
