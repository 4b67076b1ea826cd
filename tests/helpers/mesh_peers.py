"""What a mesh peer shows on a new connection, seen with Python's own TLS."""

import socket
import ssl

from meshkit import mesh_tls


def presented(address: str, tls: mesh_tls.MeshTls, server: str) -> bytes:
    """The certificate (DER) the server at address shows on a new mutual-TLS connection
    made with tls's identity, checked against server's name."""
    context = ssl.create_default_context(cafile=str(tls.directory / mesh_tls.CA_FILE))
    context.load_cert_chain(tls.directory / mesh_tls.CERT_FILE, tls.directory / mesh_tls.KEY_FILE)
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server) as conn,
    ):
        return conn.getpeercert(binary_form=True)


def der(tls: mesh_tls.MeshTls) -> bytes:
    """tls's own certificate, as presented() returns one."""
    return ssl.PEM_cert_to_DER_cert(tls.material().cert.decode())
