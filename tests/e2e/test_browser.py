"""A real browser (headless Chromium) on a page of another origin, calling ShopMesh
through Envoy's public listener as a web front end would, for a signed-in customer:
REST (with CORS preflights), gRPC-Web through the generated TypeScript client (clients/ts,
its bundle built by devmesh/ts_client.py) and WatchOrder as Server-Sent Events."""

import functools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devmesh import ts_client
from devmesh.launcher import Mesh
from devmesh.paths import executable

PAGE_DIR = Path(__file__).parent / "browser"
# headless, and nothing of its own on the network (this machine's network is closed)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageSite:
    origin: str
    reports: queue.Queue


@pytest.fixture(scope="module")
def page_site():
    """The page's own web server: another origin than Envoy's, as a front end's would be.
    It serves the TypeScript client's bundle as /shopmesh.js (built first if need be), and
    takes what the page saw at /report."""
    bundle = ts_client.build().bundle
    reports: queue.Queue = queue.Queue()
    handler = functools.partial(PageHandler, bundle, reports, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PageSite(f"http://127.0.0.1:{server.server_address[1]}", reports)
    server.shutdown()
    server.server_close()


class PageHandler(SimpleHTTPRequestHandler):
    def __init__(self, bundle: Path, reports: queue.Queue, *args, **kwargs) -> None:
        self.bundle = bundle
        self.reports = reports
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        if urllib.parse.urlsplit(path).path == "/shopmesh.js":
            return str(self.bundle)
        return super().translate_path(path)

    def do_POST(self) -> None:
        if self.path != "/report":
            self.send_error(404)
            return
        self.reports.put(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def run_page(url: str, profile: Path, reports: queue.Queue) -> dict:
    """Opens url in headless Chromium until the page reports what it saw. In real time: with
    virtual time (--virtual-time-budget), a gRPC-Web stream being read does not hold the clock,
    and the page would be cut short while it waits for WatchOrder's next message."""
    chromium = executable("chromium")
    assert chromium, "chromium is not installed (make test installs Debian's package)"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url]
    while not reports.empty():  # a late report of an earlier page
        reports.get_nowait()
    # its own process group, so that the browser is stopped with all its children
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return reports.get(timeout=60)
    except queue.Empty:
        exited = process.poll()
        state = "still running" if exited is None else f"exited with {exited}"
        pytest.fail(f"the page reported nothing within 60 s (chromium {state})")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_web_page_uses_rest_grpc_web_and_server_sent_events(
    mesh: Mesh, new_product: Callable[..., str], page_site: PageSite, tmp_path: Path
) -> None:
    product_id = new_product(5)
    token = mesh.token("browser@example.com", ["customer"])
    query = urllib.parse.urlencode({"api": f"http://{mesh.layout.public}", "product": product_id, "token": token})
    seen = run_page(f"{page_site.origin}/shop.html?{query}", tmp_path / "profile", page_site.reports)

    assert seen.get("done") is True, json.dumps(seen)
    assert product_id in seen["products"]
    # a page can read why it was refused, and that it should sign in
    assert seen["anonymous"] == {"status": 401, "code": 16, "challenge": 'Bearer realm="shopmesh"'}
    # a cross-origin JSON POST with a token: the browser sent a CORS preflight first, and Envoy allowed it
    assert seen["created"]["status"] == 200 and seen["created"]["orderStatus"] == "ORDER_STATUS_PENDING"
    assert seen["created"]["customerEmail"] == "browser@example.com"
    # confirming is an operator's job
    assert seen["forbidden"] == {"status": 403, "code": 7}
    # the request id is exposed to scripts, to quote when something went wrong
    assert re.fullmatch(r"[0-9a-f-]{36}", seen["created"]["requestId"] or "")
    assert seen["missing"] == {"status": 404, "code": 5}
    # gRPC-Web with the generated client: unary calls, an order created and watched live
    # (a server stream through Envoy's grpc_web filter), and a refusal's code and details
    web = seen["grpcWeb"]
    assert web["product"] == product_id and web["listed"]
    assert web["created"] == {"orderStatus": "ORDER_STATUS_PENDING", "customerEmail": "browser@example.com"}
    assert web["watched"] == ["ORDER_STATUS_PENDING", "ORDER_STATUS_CANCELLED"]
    # NOT_FOUND, with google.rpc.ErrorInfo and ResourceInfo decoded from grpc-status-details-bin
    assert web["notFound"] == {
        "code": 5,
        "codeName": "NotFound",
        "reasons": ["NOT_FOUND"],
        "resources": [["product", "NO-SUCH-PRODUCT"]],
    }
    # no token: UNAUTHENTICATED, so the page can ask its user to sign in
    assert web["anonymous"] == {"code": 16}
    # EventSource sent the token as a cookie
    assert seen["watched"] == ["ORDER_STATUS_PENDING", "ORDER_STATUS_CANCELLED"]
