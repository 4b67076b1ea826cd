"""The shopmesh-api wheel as a stranger's app uses it: built reproducibly, installed alone
into a clean virtual environment (none of the server's packages come with it), and the
example app placing, reading and watching an order through Envoy with a customer's token,
its refusal details included; mypy checks the example against the wheel's stubs."""

import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from devmesh import python_client
from devmesh.paths import ROOT

EXAMPLE = ROOT / "examples" / "python"
# what installing the wheel may bring (grpcio needs typing-extensions), besides what a new
# virtual environment holds
ALLOWED = {"shopmesh-api", "grpcio", "protobuf", "googleapis-common-protos", "typing-extensions", "pip", "setuptools"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return python_client.build(tmp_path_factory.mktemp("dist"))


# the lowest versions the wheel declares, each what the generated code or protobuf 7 needs
FLOORS = ("grpcio==1.85.1", "protobuf==7.35.1", "googleapis-common-protos==1.73.1")
IMPORT_ALL = (
    "import shopmesh.orders.v1.orders_pb2_grpc, shopmesh.inventory.v1.inventory_pb2_grpc,"
    " shopmesh.notifications.v1.notifications_pb2_grpc, shopmesh_api"
)


def environment(home: Path, *requirements: str) -> Path:
    """A virtual environment without system packages, with requirements installed; its python."""
    venv.create(home, with_pip=True, system_site_packages=False)
    python = home / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
        timeout=600,
    )
    return python


@pytest.fixture(scope="module")
def clean(tmp_path_factory, wheel) -> Path:
    """Holding only the wheel (and what it needs)."""
    return environment(tmp_path_factory.mktemp("app") / "venv", str(wheel))


def test_two_builds_are_the_same_bytes(wheel, tmp_path):
    again = python_client.build(tmp_path)
    assert again.name == wheel.name and again.read_bytes() == wheel.read_bytes()


def test_the_wheel_holds_the_stubs_their_types_and_protos_and_nothing_of_the_server(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for service in ("orders", "inventory", "notifications"):
        base = f"shopmesh/{service}/v1/{service}"
        assert {f"{base}_pb2.py", f"{base}_pb2.pyi", f"{base}_pb2_grpc.py", f"{base}.proto"} <= names
    assert {"shopmesh/py.typed", "shopmesh_api/py.typed", "shopmesh_api/details.py"} <= names
    assert {name.split("/")[0] for name in names} == {"shopmesh", "shopmesh_api", "shopmesh_api-0.1.0.dist-info"}


def test_the_wheel_brings_only_the_stubs_and_their_three_dependencies(clean):
    listed = subprocess.run(
        [clean, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    names = {re.split(r"[=<>]", line)[0].lower().replace("_", "-") for line in listed.split()}
    assert {"shopmesh-api", "grpcio", "protobuf", "googleapis-common-protos"} <= names <= ALLOWED, names
    imports = "import shopmesh.orders.v1.orders_pb2_grpc, shopmesh_api; import sqlalchemy"
    tried = subprocess.run([clean, "-c", imports], capture_output=True, text=True, cwd="/", timeout=60)
    assert "No module named 'sqlalchemy'" in tried.stderr, tried.stderr


def test_the_declared_floors_are_the_real_ones(wheel, tmp_path):
    python = environment(tmp_path / "venv", str(wheel), *FLOORS)
    subprocess.run([python, "-c", IMPORT_ALL], check=True, cwd="/", timeout=60)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "protobuf==7.34.0"],
        check=True,
        timeout=600,
    )
    older = subprocess.run([python, "-c", IMPORT_ALL], capture_output=True, text=True, cwd="/", timeout=60)
    assert "gencode 7.35.1 runtime 7.34.0" in older.stderr, older.stderr


def test_the_example_app_places_reads_and_watches_an_order(mesh, new_product, clean, tmp_path):
    product_id = new_product(5)
    token = mesh.token("app@example.com", ["customer"])
    app = shutil.copy(EXAMPLE / "shop_client.py", tmp_path)  # away from the repository's packages
    ran = subprocess.run(
        [
            clean,
            app,
            "--address",
            mesh.layout.public_tls,
            "--ca",
            str(mesh.layout.credentials.ca),
            "--token",
            token,
            "--product",
            product_id,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert f"refused: STOCK products/{product_id}: requested 1000000, available 5" in ran.stdout, ran.stdout
    assert "order: ORDER_STATUS_PENDING -> ORDER_STATUS_PENDING -> ORDER_STATUS_CANCELLED" in ran.stdout


def mypy(clean: Path, directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            Path(sys.executable).parent / "mypy",
            "--python-executable",
            str(clean),
            "--config-file",
            str(EXAMPLE / "mypy.ini"),
            "--no-incremental",
            str(directory / "shop_client.py"),
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=300,
    )


def test_mypy_passes_the_example_and_catches_a_type_error_in_a_copy(clean, tmp_path):
    shutil.copy(EXAMPLE / "shop_client.py", tmp_path)
    checked = mypy(clean, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "shop_client.py"
    broken.write_text(broken.read_text().replace("quantity=quantity", "quantity=str(quantity)"))
    refused = mypy(clean, tmp_path)
    assert refused.returncode == 1 and "quantity" in refused.stdout, refused.stdout
