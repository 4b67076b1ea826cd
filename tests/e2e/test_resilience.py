"""Envoy, not Python, keeps the mesh up: fault tests that break things on purpose
and read Envoy's admin /stats to show what Envoy did."""

import asyncio
import json
import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh import client
from shopmesh.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shopmesh.orders.v1 import orders_pb2 as pb
from shopmesh.orders.v1 import orders_pb2_grpc
from tests.helpers.grpc_calls import create_product
from tests.helpers.http_calls import http_call
from tests.helpers.mesh import stubs_for
from tests.helpers.messages import order_request
from tests.helpers.waiting import settles


def stat(mesh, name: str) -> int:
    for line in mesh.admin_get(f"/stats?filter=^{name}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def rest_post(mesh, path: str, body: dict) -> tuple[int, dict]:
    reply = http_call(f"http://{mesh.layout.public}{path}", "POST", body, token=mesh.token())
    return reply.status, reply.body


def test_inventory_down_fails_fast_and_recovers_without_restarts(fault_mesh):
    mesh = fault_mesh
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = create_product(stubs)
        stubs.orders.CreateOrder(order_request(product_id), timeout=10)
        mesh.kill("inventory")
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            with pytest.raises(grpc.RpcError) as raised:
                stubs.orders.CreateOrder(order_request(product_id), timeout=10)
            timings.append(time.perf_counter() - started)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "inventory is unavailable" in raised.value.details()
        assert max(timings) < 1.0, timings
        status, body = rest_post(
            mesh,
            "/v1/orders",
            {"customerEmail": "fault@example.com", "items": [{"productId": product_id, "quantity": 1}]},
        )
        assert (status, body["code"]) == (503, 14)
        assert stat(mesh, "cluster.inventory.upstream_cx_connect_fail") > 0

        mesh.start_service("inventory")
        restarted = time.perf_counter()
        while True:
            try:
                stubs.orders.CreateOrder(order_request(product_id), timeout=10)
                break
            except grpc.RpcError:
                assert time.perf_counter() - restarted < 10, "orders did not recover within 10 s"
                time.sleep(0.1)
        recovery = time.perf_counter() - restarted
    print(f"fail fast: max {max(timings) * 1000:.0f} ms; recovered {recovery:.2f} s after restart")


@pytest.mark.parametrize("fault_mesh", [{"SHOPMESH_FAULT_RESERVE_UNAVAILABLE": "0.3"}], indirect=True)
async def test_envoy_retries_ride_out_a_flaky_inventory(fault_mesh):
    mesh, calls, workers = fault_mesh, 1000, 8
    with client.channel(mesh.layout.public, mesh.token()) as sync_channel:
        stubs = stubs_for(sync_channel)
        product_id = create_product(stubs)
        retries_before = stat(mesh, "cluster.inventory.upstream_rq_retry")
        async with client.aio_channel(mesh.layout.public, mesh.token()) as channel:
            stub = orders_pb2_grpc.OrderServiceStub(channel)
            queue = iter(range(calls))
            placed, failed = [], []

            async def worker():
                for i in queue:
                    try:
                        placed.append(await stub.CreateOrder(order_request(product_id, 1 + i % 3), timeout=15))
                    except grpc.aio.AioRpcError as error:
                        failed.append(error.code())

            await asyncio.gather(*(worker() for _ in range(workers)))

        def book() -> inventory_pb2.CheckStockResponse:
            return stubs.inventory.CheckStock(inventory_pb2.CheckStockRequest(product_id=product_id), timeout=10)

        ordered = sum(o.items[0].quantity for o in placed)
        # Retries after a committed reservation took nothing twice: once Inventory has seen
        # the orders, exactly their units are held; a failed order's units wait (until its
        # reservation expires) and are counted apart.
        assert settles(lambda: book().reserved == ordered)
        stock = book()
    retries = stat(mesh, "cluster.inventory.upstream_rq_retry") - retries_before
    print(f"flaky inventory: {len(placed)}/{calls} placed, {retries} Envoy retries, failures {failed}")
    assert len(placed) >= 999
    assert retries > 200  # about 30 % of the first tries, and more
    assert stock.available + stock.reserved + stock.awaiting_order == 100_000


def overflows(mesh) -> int:
    return sum(stat(mesh, f"cluster.{name}.upstream_rq_active_overflow") for name in ("orders", "inventory"))


@pytest.mark.parametrize(
    "fault_mesh",
    [{"ENVOY_UNARY_MAX_REQUESTS": "8", "SHOPMESH_FAULT_RESERVE_DELAY_SECONDS": "0.5"}],
    indirect=True,
)
async def test_overload_is_shed_quickly_and_the_rest_succeeds(fault_mesh):
    mesh = fault_mesh
    with client.channel(mesh.layout.public, mesh.token()) as sync_channel:
        product_id = create_product(stubs_for(sync_channel))
    # shed where the slots run out first: at the Order service's own (unary) cluster, or
    # at Inventory's behind it; both have ENVOY_UNARY_MAX_REQUESTS
    overflow_before = overflows(mesh)
    async with client.aio_channel(mesh.layout.public, mesh.token()) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)

        async def one():
            started = time.perf_counter()
            try:
                await stub.CreateOrder(order_request(product_id), timeout=15)
                return None, time.perf_counter() - started
            except grpc.aio.AioRpcError as error:
                return error.code(), time.perf_counter() - started

        results = await asyncio.gather(*(one() for _ in range(100)))
        shed = [seconds for code, seconds in results if code == grpc.StatusCode.UNAVAILABLE]
        served = [seconds for code, seconds in results if code is None]
        assert {code for code, _ in results} <= {None, grpc.StatusCode.UNAVAILABLE}
        assert len(served) >= 8 and len(shed) >= 50
        assert max(shed) < 1.0, "shed calls must fail fast, not queue"
        assert overflows(mesh) > overflow_before
        # Nothing fell over: the same calls succeed once the burst is gone.
        assert (await one())[0] is None
        assert stat(mesh, "cluster.orders.outlier_detection.ejections_enforced_total") == 0
    print(f"overload: {len(served)} served, {len(shed)} shed in at most {max(shed) * 1000:.0f} ms")


@pytest.mark.parametrize("fault_mesh", [{"ENVOY_RATE_LIMIT_RPS": "5", "ENVOY_RATE_LIMIT_BURST": "20"}], indirect=True)
def test_a_burst_over_the_rate_limit_is_refused(fault_mesh):
    mesh = fault_mesh
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = create_product(stubs)
        codes = []
        for _ in range(40):
            try:
                stubs.inventory.GetProduct(inventory_pb2.GetProductRequest(product_id=product_id), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
        assert codes[:15] == [grpc.StatusCode.OK] * 15  # within the burst
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[19:]
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        # The bucket gains 5 tokens each second, so a slow machine may find a few again: REST
        # drains them and is refused with 429 and the gRPC code in the body.
        token = mesh.token()
        replies = [
            http_call(
                f"http://{mesh.layout.public}/v1/orders",
                "POST",
                {"customerEmail": "x@example.com", "items": []},
                token=token,
            )
            for _ in range(12)
        ]
        assert (429, 8) in [(reply.status, reply.body["code"]) for reply in replies]
        assert stat(mesh, "public_rate_limit.http_local_rate_limit.rate_limited") > 0
        time.sleep(1.2)  # the bucket refills 5 tokens a second
        stubs.inventory.GetProduct(inventory_pb2.GetProductRequest(product_id=product_id), timeout=10)


def test_oversized_bodies_are_refused_at_the_edge(mesh, rest):
    reply = rest(
        "POST", "/v1/orders", {"customerEmail": "big@example.com", "items": [], "requestId": "x" * (2 * 1024 * 1024)}
    )
    assert reply.status == 413
    assert reply.body["code"] == 8


@pytest.mark.parametrize(
    "fault_mesh", [{"SHOPMESH_FAULT_RESERVE_DELAY_SECONDS": "0.5", "SHUTDOWN_DRAIN_SECONDS": "3"}], indirect=True
)
def test_sigterm_drains_without_failing_accepted_calls(fault_mesh):
    mesh = fault_mesh
    inventory_address = mesh.layout.address("INVENTORY_LISTEN")
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = create_product(stubs)
        errors, successes, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    stubs.inventory.GetProduct(inventory_pb2.GetProductRequest(product_id=product_id), timeout=10)
                    successes.append(time.monotonic())
                except grpc.RpcError as error:
                    errors.append((error.code(), error.details()))
                time.sleep(0.01)

        in_flight = [stubs.orders.CreateOrder.future(order_request(product_id), timeout=15) for _ in range(4)]
        loaders = [threading.Thread(target=load) for _ in range(3)]
        for thread in loaders:
            thread.start()
        time.sleep(0.2)  # the four orders are now inside Inventory's slowed ReserveStock
        process = mesh.processes["inventory"]
        process.send_signal(signal.SIGTERM)
        with mesh.layout.channel(inventory_address, "inventory") as direct:
            time.sleep(0.3)
            health = health_pb2_grpc.HealthStub(direct).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            # ... while it still answers calls.
            inventory_pb2_grpc.InventoryServiceStub(direct).GetProduct(
                inventory_pb2.GetProductRequest(product_id=product_id), timeout=5
            )
        assert [f.result().status for f in in_flight] == [pb.ORDER_STATUS_PENDING] * 4
        assert process.wait(30) == 0
        exited = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in loaders:
            thread.join()
    assert stat(mesh, "cluster.inventory.health_check.failure") > 0
    assert any(t < exited for t in successes)
    # Every refusal came from Envoy knowing the host was gone, none from a reset or closed port.
    assert all(code == grpc.StatusCode.UNAVAILABLE and "no healthy upstream" in details for code, details in errors), (
        errors[:5]
    )


def test_the_request_id_follows_a_call_through_the_mesh(mesh, rest, new_product):
    request_id = f"rid-{time.monotonic_ns()}"
    reply = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "rid@example.com", "items": [{"productId": new_product(1), "quantity": 1}]},
        headers={"x-request-id": request_id},
    )
    assert reply.status == 200
    log = mesh.run_dir / "envoy-access.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # Envoy flushes its access log about once a second
        paths = {e["grpc_path"] for e in map(json.loads, log.read_text().splitlines()) if e["request_id"] == request_id}
        if len(paths) == 2:
            break
        time.sleep(0.2)
    assert paths == {
        "/shopmesh.orders.v1.OrderService/CreateOrder",
        "/shopmesh.inventory.v1.InventoryService/ReserveStock",
    }
