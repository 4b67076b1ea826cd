"""A background task that cannot go on takes its process down, truthfully: health says
NOT_SERVING for every name while the port still answers, then the process exits with
status 1 and one log line naming the task, so that compose or Kubernetes start it again.
(Outages it can outlive are in tests/integration/test_notifications_outages.py.)"""

import asyncio
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.launcher import ROOT
from devmesh.ports import free_port
from meshkit import migrations
from meshkit.database import Database
from notifications.main import SERVICE_NAME
from tests.helpers.mesh import identities_in

Health = health_pb2.HealthCheckResponse
# long enough for the process to start serving first, most of the time
SEND_AFTER_SECONDS = 3.0


def notification_database_refusing_to_record_a_send(path) -> None:
    """The Notification database with one email due in SEND_AFTER_SECONDS, and a trigger
    that refuses to record any email as sent: an error no pause cures, as a broken
    migration would give."""
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db, "notifications")
    asyncio.run(db.close())
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SEND_AFTER_SECONDS)).replace(tzinfo=None)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO notifications (order_id, event_sequence, recipient, subject, body, status, attempts,"
            " message_id, last_error, create_time, update_time, next_attempt_time)"
            " VALUES ('o-1', 1, 'ann@example.com', 'Order o-1 received', 'Hello', 'PENDING', 0,"
            " '<o-1.1@shopmesh>', '', :due, :due, :due)",
            {"due": due},
        )
        connection.execute(
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON notifications WHEN NEW.status = 'SENT'"
            " BEGIN SELECT RAISE(ABORT, 'the test refuses to record an email as sent'); END"
        )
    connection.close()


def statuses(health: health_pb2_grpc.HealthStub) -> set:
    return {health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status for name in ("", SERVICE_NAME)}


def test_a_failed_background_task_makes_health_not_serving_and_the_process_exit_1(tmp_path):
    notification_database_refusing_to_record_a_send(tmp_path / "notifications.db")
    layout = identities_in(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "notifications"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SHOPMESH_DATA_DIR": str(tmp_path),
            "NOTIFICATIONS_LISTEN": address,
            # nothing there: the consumer waits for it, the sender works alone
            "MESH_ADDRESS": f"127.0.0.1:{free_port()}",
            "SHUTDOWN_DRAIN_SECONDS": "2",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        with layout.channel(address, "notifications") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            health.Check(health_pb2.HealthCheckRequest(), timeout=20, wait_for_ready=True)
            deadline = time.monotonic() + 15
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    seen.append(statuses(health))
                except grpc.RpcError:
                    break  # the port closed: the drain is over
                time.sleep(0.1)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, output[-2000:]
    # Every name says the same; SERVING while the sender waited for its email's time (if the
    # process was up by then), then NOT_SERVING until the port closed.
    assert seen and seen[-1] == {Health.NOT_SERVING}, seen
    assert seen == sorted(seen, key=lambda status: status == {Health.NOT_SERVING}), seen
    assert (tmp_path / "maildir" / "new").is_dir()
    errors = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"ERROR"' in line]
    assert len(errors) == 1, output[-2000:]
    assert "Sender.run" in errors[0]["message"] and "IntegrityError" in errors[0]["exc_info"]
