"""Five minutes of a shop's mixed load on PostgreSQL (create, confirm, ship, cancel,
restock), with one Inventory and one Order restart in the middle; afterwards the books
balance for every product and `python -m inventory.reconcile` finds no difference.

`make soak-test` runs it (`.ci/run` does); SHOPMESH_SOAK_SECONDS shortens or lengthens it."""

import os
import random
import subprocess
import sys
import threading
import time

import grpc
import pytest

from devmesh import client
from devmesh.launcher import ROOT, Mesh
from shopmesh.inventory.v1 import inventory_pb2
from shopmesh.orders.v1 import orders_pb2 as pb
from tests.helpers.ids import unique
from tests.helpers.mesh import start_mesh, stubs_for
from tests.helpers.waiting import settles

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SHOPMESH_SOAK_SECONDS", "300"))
WORKERS = 6
PRODUCTS = 8
# a failed call during a restart is expected; anything else is a defect
EXPECTED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture(scope="module")
def soak_mesh(request, tmp_path_factory):
    env = {"INVENTORY_RESERVATION_TTL_SECONDS": "5"}
    yield from start_mesh(request, tmp_path_factory.mktemp("soak"), "postgresql", env)


def test_five_minutes_of_mixed_load_with_restarts_leave_the_books_balanced(soak_mesh: Mesh) -> None:
    mesh = soak_mesh
    rng = random.Random(7)
    counts: dict[str, int] = {}
    unexpected: list[str] = []
    stop = threading.Event()
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        products = []
        for _ in range(PRODUCTS):
            product_id = unique("SOAK")
            stubs.inventory.CreateProduct(
                inventory_pb2.CreateProductRequest(
                    product={
                        "product_id": product_id,
                        "title": "soak",
                        "available": 200,
                        "price": {"currency_code": "EUR", "units": 1},
                    }
                ),
                timeout=10,
            )
            products.append(product_id)

        def attempt(name: str, call) -> object | None:
            try:
                result = call()
            except grpc.RpcError as error:
                counts[f"{name} {error.code().name}"] = counts.get(f"{name} {error.code().name}", 0) + 1
                if error.code() not in EXPECTED:
                    unexpected.append(f"{name}: {error.code().name} {error.details()}")
                time.sleep(0.05)  # a client pauses before its next call, as clients do
                return None
            counts[name] = counts.get(name, 0) + 1
            return result

        def worker(seed: int) -> None:
            local = random.Random(seed)
            live: list[str] = []
            while not stop.is_set():
                roll = local.random()
                if roll < 0.45 or not live:
                    items = {p: local.randint(1, 3) for p in local.sample(products, local.randint(1, 2))}
                    placed = attempt(
                        "create",
                        lambda items=items: stubs.orders.CreateOrder(
                            pb.CreateOrderRequest(
                                customer_email="soak@example.com",
                                request_id=unique("soak"),
                                items=[pb.OrderItemRequest(product_id=p, quantity=q) for p, q in items.items()],
                            ),
                            timeout=15,
                        ),
                    )
                    if placed is not None:
                        live.append(placed.order_id)
                elif roll < 0.65:
                    attempt(
                        "confirm",
                        lambda: stubs.orders.ConfirmOrder(
                            pb.ConfirmOrderRequest(order_id=local.choice(live)), timeout=15
                        ),
                    )
                elif roll < 0.80:
                    attempt(
                        "ship",
                        lambda: stubs.orders.ShipOrder(
                            pb.ShipOrderRequest(order_id=live.pop(local.randrange(len(live)))), timeout=15
                        ),
                    )
                elif roll < 0.95:
                    attempt(
                        "cancel",
                        lambda: stubs.orders.CancelOrder(
                            pb.CancelOrderRequest(order_id=live.pop(local.randrange(len(live)))), timeout=15
                        ),
                    )
                else:
                    attempt(
                        "restock",
                        lambda: stubs.inventory.RestockProduct(
                            inventory_pb2.RestockProductRequest(
                                product_id=local.choice(products), quantity=local.randint(1, 20)
                            ),
                            timeout=15,
                        ),
                    )

        threads = [threading.Thread(target=worker, args=(rng.randrange(10**9),)) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(SECONDS / 3)
            mesh.stop_process("inventory")
            mesh.start_service("inventory")
            time.sleep(SECONDS / 3)
            mesh.kill("orders")  # a crash, mid-transaction for some calls
            mesh.start_service("orders")
            time.sleep(SECONDS / 3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        print("soak:", dict(sorted(counts.items())))
        assert not unexpected, unexpected[:20]
        assert counts.get("create", 0) > 100 and counts.get("ship", 0) and counts.get("cancel", 0)

        def reconciled() -> subprocess.CompletedProcess | None:
            checked = subprocess.run(
                [sys.executable, "-m", "inventory.reconcile"],
                cwd=ROOT,
                env=dict(mesh.layout.env),
                capture_output=True,
                text=True,
                timeout=120,
            )
            return checked if checked.returncode == 0 else None

        # quiet now: orphans of the crash expire (5 s + grace), every event is applied
        checked = settles(reconciled, timeout=60)
        assert checked is not None, subprocess.run(
            [sys.executable, "-m", "inventory.reconcile"],
            cwd=ROOT,
            env=dict(mesh.layout.env),
            capture_output=True,
            text=True,
        ).stdout[-3000:]
        assert checked.stdout.strip() == "the books balance"
        for product_id in products:
            book = stubs.inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10)
            assert book.awaiting_order == 0 and book.available >= 0
