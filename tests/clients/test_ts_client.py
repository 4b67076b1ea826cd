"""The TypeScript client (clients/ts): generated from protos/ with buf and protoc-gen-es,
type-checked by tsc, bundled for a plain <script> and packed for npm, all by
devmesh/ts_client.py from npm's tools (package.json), offline."""

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from devmesh import ts_client
from devmesh.paths import ROOT


@pytest.fixture(scope="module")
def built() -> ts_client.Outputs:
    return ts_client.build()


def test_the_client_and_its_generated_code_type_check(built):
    checked = ts_client.typecheck()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    generated = {p.relative_to(ts_client.GENERATED).as_posix() for p in ts_client.GENERATED.rglob("*.ts")}
    assert {
        "shopmesh/orders/v1/orders_pb.ts",
        "shopmesh/inventory/v1/inventory_pb.ts",
        "shopmesh/notifications/v1/notifications_pb.ts",
        "google/rpc/error_details_pb.ts",
    } <= generated


def test_a_type_error_fails_the_check(built: ts_client.Outputs, tmp_path: Path) -> None:
    """The same check on a copy with one wrong call: tsc must refuse it, and only it."""
    copy = tmp_path / "ts"
    for name in ("src", "gen"):
        shutil.copytree(ts_client.CLIENT / name, copy / name)
    for name in ("tsconfig.json", "package.json"):
        shutil.copy(ts_client.CLIENT / name, copy / name)
    (copy / "node_modules").symlink_to(ROOT / "node_modules")
    (copy / "src" / "broken.ts").write_text(
        'import { createClients } from "./index.js";\n'
        "\n"
        "export async function broken(): Promise<void> {\n"
        '  const { orders } = createClients("http://127.0.0.1:8080", "token");\n'
        "  // order_id is a string in orders.proto\n"
        "  await orders.getOrder({ orderId: 42 });\n"
        "}\n"
    )
    checked = ts_client.typecheck(copy)
    output = (checked.stdout + checked.stderr).strip()
    assert checked.returncode != 0, "tsc accepted a number for a string field"
    errors = [line for line in output.splitlines() if ": error TS" in line]
    # line 6, column 27: the 42
    assert errors == ["src/broken.ts(6,27): error TS2322: Type 'number' is not assignable to type 'string'."], output


def test_the_bundle_loads_in_a_plain_script(built):
    probe = (
        "require('vm').runInThisContext(require('fs').readFileSync(process.argv[1], 'utf8'));"
        "const names = ['createClients', 'OrderService', 'InventoryService', 'NotificationService',"
        " 'ConnectError', 'Code', 'ErrorInfoSchema', 'OrderStatusSchema'];"
        "console.log(JSON.stringify(names.filter((n) => ShopMesh[n] === undefined)));"
        "console.log(JSON.stringify(Object.keys(ShopMesh.createClients('http://127.0.0.1:8080', 't'))));"
    )
    done = subprocess.run(["node", "-e", probe, str(built.bundle)], capture_output=True, text=True, check=True)
    missing, clients = (json.loads(line) for line in done.stdout.splitlines())
    assert missing == []
    assert clients == ["orders", "inventory", "notifications", "transport"]


def test_the_npm_package_holds_javascript_and_declarations(built: ts_client.Outputs) -> None:
    with tarfile.open(built.tarball) as tarball:
        names = set(tarball.getnames())
        package = json.load(tarball.extractfile("package/package.json"))
    assert (package["main"], package["types"]) == ("./dist/lib/src/index.js", "./dist/lib/src/index.d.ts")
    for module in ("src/index", "gen/shopmesh/orders/v1/orders_pb", "gen/google/rpc/error_details_pb"):
        assert {f"package/dist/lib/{module}.js", f"package/dist/lib/{module}.d.ts"} <= names
    assert "package/dist/shopmesh.js" in names
    # built output only: no TypeScript sources, no earlier package inside the package
    assert not [n for n in names if (n.endswith(".ts") and not n.endswith(".d.ts")) or n.endswith(".tgz")]


def test_a_second_build_reuses_the_first(built):
    before = built.tarball.stat().st_mtime_ns
    assert ts_client.build() == built
    assert built.tarball.stat().st_mtime_ns == before


def test_missing_tools_fail_in_one_line(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(ts_client, "NODE_BIN", tmp_path)
    with pytest.raises(SystemExit) as failed:
        ts_client.build()
    message = str(failed.value.code)
    assert "\n" not in message and "node_modules/.bin/tsc" in message and "make install" in message
