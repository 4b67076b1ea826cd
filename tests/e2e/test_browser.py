"""A real browser (headless Chromium) on a page of another origin, calling ShopMesh
through Envoy's public listener as a web front end would, for a signed-in customer:
REST (with CORS preflights), gRPC-Web and WatchOrder as Server-Sent Events."""

import functools
import html
import json
import os
import re
import signal
import subprocess
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devmesh.paths import executable

PAGE_DIR = Path(__file__).parent / "browser"
# headless, and nothing of its own on the network (this machine's network is closed)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def page_origin():
    """The page's own web server: another origin than Envoy's, as a front end's would be."""
    handler = functools.partial(QuietHandler, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def run_page(url: str, profile: Path) -> dict:
    """Loads url in headless Chromium until its script is done; returns its #result."""
    chromium = executable("chromium")
    assert chromium, "chromium is not installed (make test installs Debian's package)"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url]
    # its own process group, so that a browser that hangs is stopped with all its children
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        dom, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def test_a_web_page_uses_rest_grpc_web_and_server_sent_events(mesh, new_product, page_origin, tmp_path):
    product_id = new_product(5)
    token = mesh.token("browser@example.com", ["customer"])
    query = urllib.parse.urlencode({"api": f"http://{mesh.layout.public}", "product": product_id, "token": token})
    seen = run_page(f"{page_origin}/shop.html?{query}", tmp_path / "profile")

    assert seen.get("done"), seen
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
    web = seen["grpcWeb"]
    assert web["status"] == 200 and web["contentType"].startswith("application/grpc-web")
    assert product_id in web["message"] and "grpc-status:0" in web["trailers"]
    # EventSource sent the token as a cookie
    assert seen["watched"] == ["ORDER_STATUS_PENDING", "ORDER_STATUS_CANCELLED"]
