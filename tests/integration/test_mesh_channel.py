"""meshkit.mesh_tls against a real grpc.aio server on mutual TLS: the server takes new
files for new connections, and a MeshChannel moves new calls to a channel that presents
new files while a stream opened before goes on."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh import mesh_identity
from meshkit import mesh_tls
from meshkit.server import ServiceBinding, create_server
from tests.helpers.mesh_peers import der, presented

NAME = "shopmesh.test.v1.Thing"


@pytest.fixture
def identities(tmp_path):
    """Identities of their own: these tests rotate them."""
    return mesh_identity.ensure(mesh_identity.MeshIdentity(tmp_path / "mesh"))


@pytest.fixture
async def server(identities):
    tls = mesh_tls.MeshTls(identities.directory("orders"), "orders")
    app = create_server("127.0.0.1:0", [ServiceBinding(NAME, object(), lambda *_: None)], error_domain="test", tls=tls)
    await app.start()
    yield app
    await app.stop(0)


def presented_to(app, identities, caller: str) -> mesh_tls.MeshChannel:
    tls = mesh_tls.MeshTls(identities.directory(caller), caller)
    return mesh_tls.MeshChannel(tls, f"127.0.0.1:{app.port}", peer="orders")


async def check(channel) -> int:
    return (await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)).status


async def test_new_files_reach_new_calls_and_an_open_stream_goes_on(server, identities):
    channel = presented_to(server, identities, "envoy")
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=NAME))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        assert channel.renew() is False  # nothing changed
        mesh_identity.ensure(identities, rotate=True)
        assert channel.renew() is True
        assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        # the stream opened before is still on the replaced channel, which is closing slowly
        await server.health.set(NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
    finally:
        await channel.close()


async def test_a_half_written_identity_is_not_taken(server, identities, caplog):
    channel = presented_to(server, identities, "envoy")
    try:
        directory = identities.directory("envoy")
        other = mesh_identity.ensure(mesh_identity.MeshIdentity(directory.parent.parent / "other"), ["envoy"])
        # a certificate that is not the key's, as a reader could see in the middle of a hand-made copy
        mesh_identity.publish(
            directory,
            {
                "cert.pem": (other.cert("envoy").read_text(), 0o644),
                "key.pem": (identities.key("orders").read_text(), 0o600),
                "ca.pem": (identities.bundle("envoy").read_text(), 0o644),
            },
        )
        assert channel.renew() is False
        assert "not reloaded" in caplog.text
        assert await check(channel) == health_pb2.HealthCheckResponse.SERVING  # the previous one still calls
    finally:
        await channel.close()


async def test_a_server_shows_a_rotated_certificate_on_new_connections(server, identities):
    operator = mesh_tls.MeshTls(identities.directory("operator"), "operator")
    orders = mesh_tls.MeshTls(identities.directory("orders"), "orders")
    address = f"127.0.0.1:{server.port}"
    before = der(orders)
    assert await asyncio.to_thread(presented, address, operator, "orders") == before
    mesh_identity.ensure(identities, rotate=True)
    assert der(orders) != before
    assert await asyncio.to_thread(presented, address, operator, "orders") == der(orders)


async def test_a_certificate_of_another_ca_is_refused(server, identities):
    stranger = mesh_identity.ensure(mesh_identity.MeshIdentity(identities.root.parent / "stranger"), ["operator"])
    foreign = mesh_tls.MeshTls(stranger.directory("operator"), "operator")
    async with mesh_tls.channel(
        foreign, f"127.0.0.1:{server.port}", [("grpc.use_local_subchannel_pool", 1)], "orders"
    ) as refused:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await check(refused)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
