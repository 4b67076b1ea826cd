"""A peer's failure reaches public clients in ShopMesh's words, with a code that says
whether trying again may help; Envoy's and the peer's own text stay in the log, under
the request id (issue 14)."""

import json
import time
from typing import Any

import grpc
import pytest

from devmesh import client
from devmesh.launcher import Mesh
from tests.helpers.grpc_calls import create_product
from tests.helpers.http_calls import http_call
from tests.helpers.ids import unique
from tests.helpers.mesh import stubs_for
from tests.helpers.messages import order_request

ENVOY_WORDS = ("upstream", "reset", "connect", "healthy", "111")


def peer_failures(mesh: Mesh, request_id: str) -> list[dict[str, Any]]:
    """The Order service's log lines about a failed call to a peer, for one request."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in mesh.log_path("orders").read_text().splitlines() if line.startswith("{")]
        found = [e for e in lines if e.get("request_id") == request_id and "peer_code" in e]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_inventory_down_is_unavailable_in_shopmesh_words_and_envoys_text_is_logged(fault_mesh: Mesh) -> None:
    mesh = fault_mesh
    with client.channel(mesh.layout.public, mesh.token()) as channel:
        stubs = stubs_for(channel)
        product_id = create_product(stubs)
        mesh.kill("inventory")
        request_id = unique("rid")
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as raised:
            stubs.orders.CreateOrder(order_request(product_id), timeout=10, metadata=[("x-request-id", request_id)])
        seconds = time.perf_counter() - started
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "inventory is unavailable; try again later"
    [logged] = peer_failures(mesh, request_id)
    assert (logged["peer"], logged["peer_code"], logged["level"]) == ("inventory", "UNAVAILABLE", "WARNING")
    # Envoy's own words: "upstream connect error or disconnect/reset before headers. ...", or
    # "no healthy upstream" once its health checks have seen Inventory gone
    assert any(word in logged["peer_details"] for word in ENVOY_WORDS), logged

    rest_id = unique("rid")
    reply = http_call(
        f"http://{mesh.layout.public}/v1/orders",
        "POST",
        {"customerEmail": "fault@example.com", "items": [{"productId": product_id, "quantity": 1}]},
        headers={"x-request-id": rest_id},
        token=mesh.token(),
    )
    assert (reply.status, reply.body["code"], reply.body["message"]) == (
        503,
        14,
        "inventory is unavailable; try again later",
    )
    [rest_logged] = peer_failures(mesh, rest_id)
    assert (rest_logged["peer"], rest_logged["peer_code"], rest_logged["level"]) == (
        "inventory",
        "UNAVAILABLE",
        "WARNING",
    )
    print(
        f"inventory down: UNAVAILABLE in ShopMesh's words after {seconds * 1000:.0f} ms; "
        f"logged: {logged['peer_details']!r}"
    )
