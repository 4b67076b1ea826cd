"""meshkit.server with background tasks, for every service: a task that fails makes
health NOT_SERVING for every name and serve() stop; an outage the task outlives does not."""

import asyncio
import sqlite3

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import exc

from meshkit import mesh_tls, resume
from meshkit.server import BackgroundTaskFailed, ServiceBinding, create_server, serve

NAME = "shopmesh.test.v1.Thing"
Health = health_pb2.HealthCheckResponse


def server_with(tls, *background):
    app = create_server("127.0.0.1:0", [ServiceBinding(NAME, object(), lambda *_: None)], error_domain="test", tls=tls)
    app.background.extend(background)
    return app


def channel(app, tls) -> grpc.aio.Channel:
    return mesh_tls.channel(tls, f"127.0.0.1:{app.port}", peer=tls.name)


async def statuses(app, tls) -> set:
    async with channel(app, tls) as channel_:
        health = health_pb2_grpc.HealthStub(channel_)
        return {(await health.Check(health_pb2.HealthCheckRequest(service=n), timeout=5)).status for n in ("", NAME)}


async def a_bug():
    await asyncio.sleep(0.2)
    raise KeyError("a bug")


async def test_a_failed_task_turns_every_name_not_serving(envoy_tls):
    app = server_with(envoy_tls, a_bug)
    await app.start()
    try:
        assert await statuses(app, envoy_tls) == {Health.SERVING}
        await asyncio.wait_for(app.failed.wait(), 5)
        await asyncio.sleep(0.1)
        assert await statuses(app, envoy_tls) == {Health.NOT_SERVING}
        assert app.failed_task == "a_bug"
    finally:
        await app.stop(0)


async def test_serve_stops_gracefully_and_says_which_task_failed(envoy_tls):
    app = server_with(envoy_tls, a_bug)
    with pytest.raises(BackgroundTaskFailed, match="a_bug"):
        await asyncio.wait_for(serve(app, drain=0.1), 10)
    async with channel(app, envoy_tls) as stopped:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(stopped).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_outage_the_task_outlives_leaves_the_service_serving(envoy_tls):
    turns = []

    async def turn():
        turns.append(1)
        raise exc.OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))

    async def outlives():
        await resume.keep_going("work", turn, 0.05)

    app = server_with(envoy_tls, outlives)
    await app.start()
    try:
        await asyncio.sleep(0.5)
        assert len(turns) > 3 and not app.failed.is_set()
        assert await statuses(app, envoy_tls) == {Health.SERVING}
    finally:
        await app.stop(0)
    assert not app.failed.is_set()
