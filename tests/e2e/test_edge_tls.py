"""TLS at the edge, as curl sees it: the development CA makes the certificate trusted for
localhost and 127.0.0.1, HTTP/2 and HTTP/1.1 are both offered, and without the CA (or
without TLS) nothing gets through."""

import shutil
import subprocess

import pytest

CURL = shutil.which("curl")
pytestmark = [
    pytest.mark.skipif(CURL is None, reason="curl is not installed"),
    pytest.mark.parametrize("mesh", ["sqlite"], indirect=True),
]


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CURL, "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
@pytest.mark.parametrize("version", ["--http2", "--http1.1"])
def test_curl_with_the_ca_reads_the_catalogue(mesh, host, version):
    port = mesh.layout.public_tls.rsplit(":", 1)[1]
    reply = curl(
        version,
        "--cacert",
        str(mesh.layout.credentials.ca),
        "-w",
        "\\n%{http_version}",
        f"https://{host}:{port}/v1/products",
    )
    assert reply.returncode == 0, reply.stderr
    body, http_version = reply.stdout.rsplit("\n", 1)
    assert '"products"' in body
    assert http_version == ("2" if version == "--http2" else "1.1")


def test_curl_without_the_ca_is_refused(mesh):
    reply = curl(f"https://{mesh.layout.public_tls}/v1/products")
    assert reply.returncode == 60, reply  # the peer's certificate is not trusted


def test_plaintext_to_the_tls_port_gets_nothing(mesh):
    reply = curl(f"http://{mesh.layout.public_tls}/v1/products")
    assert reply.returncode != 0 or '"products"' not in reply.stdout
