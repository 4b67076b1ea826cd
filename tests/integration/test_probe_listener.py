"""meshkit.server's probe listener (HEALTH_LISTEN): a kubelet's gRPC probe, which has no
mesh certificate, learns in plaintext whether the service serves, and nothing more."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from meshkit.server import ServiceBinding, create_server

NAME = "shopmesh.test.v1.Thing"
Health = health_pb2.HealthCheckResponse


@pytest.fixture
async def app(envoy_tls):
    app = create_server(
        "127.0.0.1:0", [ServiceBinding(NAME, object(), lambda *_: None)], error_domain="test", tls=envoy_tls
    )
    app.probe_port = app.listen_for_probes("127.0.0.1:0")
    await app.start()
    yield app
    await app.stop(0)


async def check(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return (
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        ).status


async def test_a_probe_without_a_certificate_sees_the_status_and_its_changes(app):
    assert await check(app.probe_port) == Health.SERVING
    assert await check(app.probe_port, NAME) == Health.SERVING
    await app.health.enter_graceful_shutdown()
    assert await check(app.probe_port) == Health.NOT_SERVING


async def test_the_probe_port_serves_nothing_but_health(app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.probe_port}") as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await reflection.read()
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        unknown = channel.unary_unary(f"/{NAME}/Get")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unknown(b"", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_service_port_still_refuses_plaintext(app):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(app.port)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_probe_port_closes_with_the_server(envoy_tls):
    app = create_server(
        "127.0.0.1:0", [ServiceBinding(NAME, object(), lambda *_: None)], error_domain="test", tls=envoy_tls
    )
    port = app.listen_for_probes("127.0.0.1:0")
    await app.start()
    await app.stop(0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(port)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
