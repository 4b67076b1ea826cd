"""Each client address has a rate-limit bucket of its own at the edge: one scraper is
refused while other clients go on. The address is the peer's, or what a trusted proxy
says it is; never what a client claims in X-Forwarded-For."""

import http.client
import json

import pytest

from tests.helpers.mesh import start_mesh

PRODUCTS = "/v1/products"
CLIENT_LIMITS = {"ENVOY_CLIENT_RATE_LIMIT_RPS": "1", "ENVOY_CLIENT_RATE_LIMIT_BURST": "5"}


@pytest.fixture(params=["0", "1"], ids=["no proxy", "one trusted proxy"])
def limited_mesh(request, tmp_path):
    yield from start_mesh(request, tmp_path, "sqlite", {**CLIENT_LIMITS, "ENVOY_XFF_TRUSTED_HOPS": request.param})


def statuses(mesh, source: str, count: int, forwarded_for: str | None = None) -> list[int]:
    """count anonymous GETs of the catalogue over one connection from the loopback address source."""
    host, port = mesh.layout.public.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    try:
        codes = []
        for _ in range(count):
            connection.request("GET", PRODUCTS, headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            if reply.status == 429:
                assert json.loads(body)["code"] == 8  # RESOURCE_EXHAUSTED, as every REST error: a google.rpc.Status
            codes.append(reply.status)
        return codes
    finally:
        connection.close()


def test_one_client_over_its_limit_does_not_starve_the_others(limited_mesh):
    mesh = limited_mesh
    scraper = statuses(mesh, "127.0.0.2", 12)
    assert scraper[:5] == [200] * 5 and 429 in scraper[5:]
    # the scraper's bucket is empty; another address still has all of its own
    assert statuses(mesh, "127.0.0.3", 5) == [200] * 5


def test_a_client_cannot_escape_its_bucket_by_claiming_another_address(limited_mesh):
    mesh = limited_mesh
    if mesh.layout.env["ENVOY_XFF_TRUSTED_HOPS"] == "0":
        # No proxy is trusted: X-Forwarded-For is the client's own words and changes nothing,
        # even a different address claimed on every request.
        claims = [statuses(mesh, "127.0.0.4", 1, f"198.51.100.{i}")[0] for i in range(12)]
        assert claims[:5] == [200] * 5 and 429 in claims[5:]
        return
    # Behind one trusted proxy (here 127.0.0.4), the client is the address that proxy appended
    # last, 203.0.113.7, whatever the client wrote before it.
    spoofed = [statuses(mesh, "127.0.0.4", 1, f"198.51.100.{i}, 203.0.113.7")[0] for i in range(12)]
    assert spoofed[:5] == [200] * 5 and 429 in spoofed[5:]
    # another client behind the same proxy has a bucket of its own
    assert statuses(mesh, "127.0.0.4", 5, "203.0.113.8") == [200] * 5
