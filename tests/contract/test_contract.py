"""The contract check passes for the repository, and catches each kind of break.

Breaks are made in a copy of protos/ and buf.yaml under tmp_path, never in the working
tree. Each edit must apply exactly once, so a proto change that moves its target fails
here loudly instead of letting the check pass without testing anything.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devmesh import contract
from devmesh.paths import DESCRIPTOR_SET, PROTO_DEPS, PROTOS, ROOT

INVENTORY = "shopmesh/inventory/v1/inventory.proto"
ORDERS = "shopmesh/orders/v1/orders.proto"
PRODUCT_LAST_FIELD = "google.protobuf.Timestamp update_time = 6 [(google.api.field_behavior) = OUTPUT_ONLY];\n"
RELEASE_STOCK = "rpc ReleaseStock(ReleaseStockRequest) returns (Reservation);\n"
GET_PRODUCT = "inventory.v1.InventoryService.GetProduct"
CHECK_STOCK = "inventory.v1.InventoryService.CheckStock"

# (file, text, replacement)
BUF_BREAKS = {
    "renamed field": (INVENTORY, "string title = 2", "string display_title = 2"),
    "changed field number": (INVENTORY, "int64 available = 4 [", "int64 available = 7 ["),
    "removed enum value": (ORDERS, "  ORDER_STATUS_CANCELLED = 4;\n", ""),
}
# what buf says of each break, without the file:line:column it starts with
BUF_SAYS = {
    "renamed field": [
        'Field "2" with name "display_title" on message "Product" changed option "json_name" from "title" to '
        '"displayTitle".',
        'Field "2" on message "Product" changed name from "title" to "display_title".',
    ],
    "changed field number": ['Previously present field "4" with name "available" on message "Product" was deleted.'],
    "removed enum value": ['Previously present enum value "4" on enum "OrderStatus" was deleted.'],
}
COMPATIBLE = {
    "added field": (INVENTORY, PRODUCT_LAST_FIELD, PRODUCT_LAST_FIELD + "  string brand = 7;\n"),
    "added method": (
        INVENTORY,
        RELEASE_STOCK,
        RELEASE_STOCK + "  rpc FindProduct(GetProductRequest) returns (Product);\n",
    ),
    "added method with a REST rule": (
        INVENTORY,
        RELEASE_STOCK,
        RELEASE_STOCK
        + "  rpc FindProduct(GetProductRequest) returns (Product) {\n"
        + '    option (google.api.http) = {get: "/v1/products:find"};\n  }\n',
    ),
}
# (file, text, replacement, method whose mapping changed)
REST_BREAKS = {
    "changed path": (INVENTORY, 'get: "/v1/products/{product_id}"}', 'get: "/v1/items/{product_id}"}', GET_PRODUCT),
    "changed verb": (
        INVENTORY,
        'get: "/v1/products/{product_id}/stock"}',
        'post: "/v1/products/{product_id}/stock"}',
        CHECK_STOCK,
    ),
    "changed body": (INVENTORY, 'body: "product"', 'body: "*"', "inventory.v1.InventoryService.CreateProduct"),
}


@pytest.fixture(scope="module")
def buf() -> str:
    return contract.find_buf()


def copy_workspace(into: Path) -> Path:
    """protos/, buf.yaml and a link to .protodeps/ under into."""
    if not PROTO_DEPS.is_dir():
        pytest.fail(f"{PROTO_DEPS} is missing: run `make protodeps`")
    into.mkdir(parents=True)
    shutil.copytree(PROTOS, into / PROTOS.name)
    shutil.copy2(ROOT / "buf.yaml", into / "buf.yaml")
    (into / PROTO_DEPS.name).symlink_to(PROTO_DEPS.resolve(), target_is_directory=True)
    return into


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, buf) -> Path:
    """An image of the unchanged protos, built in its own copy."""
    tmp = tmp_path_factory.mktemp("baseline")
    return contract.build_image(copy_workspace(tmp / "workspace"), tmp / "baseline.binpb", buf)


def edited_image(tmp_path: Path, buf: str, file: str, text: str, replacement: str) -> Path:
    workspace = copy_workspace(tmp_path / "workspace")
    proto = workspace / PROTOS.name / file
    source = proto.read_text()
    assert source.count(text) == 1, f"{text!r} is not in {file} exactly once: update this test's edit"
    proto.write_text(source.replace(text, replacement))
    return contract.build_image(workspace, tmp_path / "current.binpb", buf)


def test_repository_is_compatible_with_its_baseline(tmp_path, buf):
    current = contract.build_image(ROOT, tmp_path / "current.binpb", buf)
    # The committed descriptor set is protoc's, the current image buf's: the two must
    # agree, or every baseline would show false breaks. It is also the baseline of last
    # resort, in a clone that has no other.
    baselines = {"gen/shopmesh.pb": DESCRIPTOR_SET.read_bytes()}
    ref = contract.default_ref()
    descriptor = contract.descriptor_at(ref) if ref else None
    if descriptor is not None:
        baselines[ref] = descriptor
    for name, descriptor in baselines.items():
        path = tmp_path / "baseline.binpb"
        path.write_bytes(descriptor)
        assert contract.check(current, path, buf) == [], f"breaks against {name}"


@pytest.mark.parametrize("case", BUF_BREAKS)
def test_buf_breaking_fails_a_break(case: str, tmp_path: Path, buf: str, baseline: Path) -> None:
    current = edited_image(tmp_path, buf, *BUF_BREAKS[case])
    breaks = contract.buf_breaks(current, baseline, buf)
    assert [line.split(":", 3)[0] for line in breaks] == [BUF_BREAKS[case][0]] * len(BUF_SAYS[case]), breaks
    assert [line.split(":", 3)[3] for line in breaks] == BUF_SAYS[case]
    assert contract.check(current, baseline, buf) != []


@pytest.mark.parametrize("case", COMPATIBLE)
def test_an_addition_passes_both_checks(case, tmp_path, buf, baseline):
    current = edited_image(tmp_path, buf, *COMPATIBLE[case])
    assert contract.check(current, baseline, buf) == []


@pytest.mark.parametrize("case", REST_BREAKS)
def test_rest_check_fails_a_changed_mapping(case, tmp_path, buf, baseline):
    file, text, replacement, method = REST_BREAKS[case]
    current = edited_image(tmp_path, buf, file, text, replacement)
    # buf breaking misses it: the REST check is what stands between this and clients
    assert contract.buf_breaks(current, baseline, buf) == []
    breaks = contract.rest_breaks(current.read_bytes(), baseline.read_bytes())
    assert len(breaks) == 1 and breaks[0].startswith(f"shopmesh.{method}: REST mapping changed"), breaks
    assert text.split('"')[1] in breaks[0] and replacement.split('"')[1] in breaks[0]


def test_rest_check_fails_a_removed_method(tmp_path, buf, baseline):
    current = edited_image(tmp_path, buf, INVENTORY, "rpc GetProduct(", "rpc FetchProduct(")
    breaks = contract.rest_breaks(current.read_bytes(), baseline.read_bytes())
    assert breaks == [
        f'shopmesh.{GET_PRODUCT}: REST mapping {{get: "/v1/products/{{product_id}}"}} removed with the method'
    ]


@pytest.fixture
def own_git(monkeypatch):
    """No GIT_DIR and the like from a calling hook: the scratch repositories stay scratch."""
    for name in [name for name in os.environ if name.startswith("GIT_")]:
        monkeypatch.delenv(name)


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=contract test", "-c", "user.email=contract@test.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)


def test_no_baseline_is_said_and_passes(own_git, tmp_path, capsys):
    # a clone of one commit: no tag, no HEAD~1
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    assert contract.default_ref(tmp_path) is None
    assert contract.run([], root=tmp_path) == 0
    assert "no baseline to compare with: no v* tag and no HEAD~1" in capsys.readouterr().out


def test_baseline_without_descriptor_set_is_said_and_passes(own_git, tmp_path, capsys):
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "before gen/")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "second")
    assert contract.run([], root=tmp_path) == 0
    assert "HEAD~1 has no gen/shopmesh.pb" in capsys.readouterr().out
    # asked for by name, a baseline without one is an error
    assert contract.run(["--against", "HEAD~1"], root=tmp_path) == 2


def test_newest_release_tag_is_the_default_baseline(own_git, tmp_path):
    git(tmp_path, "init", "-q")
    for tag in ("v1.9.0", "v1.10.0", "v1.2.0"):
        git(tmp_path, "commit", "-q", "--allow-empty", "-m", tag)
        git(tmp_path, "tag", tag)
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "after the releases")
    assert contract.default_ref(tmp_path) == "v1.10.0"


def test_unknown_revision_is_a_usage_error(capsys):
    assert contract.run(["--against", "no-such-revision"]) == 2
    assert "unknown revision 'no-such-revision'" in capsys.readouterr().err
