"""The mesh's identities: a CA of its own, one short-lived certificate per process naming
its SPIFFE ID, fit for both ends of mutual TLS, private keys 0600, renewed before the end,
each identity's files published at once. The handshakes themselves are checked with real
TLS (Python's ssl) on loopback."""

import datetime as dt
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devmesh import credentials, mesh_identity
from devmesh.mesh_identity import IDENTITIES, MeshIdentity
from meshkit import config


@pytest.fixture
def made(tmp_path):
    return mesh_identity.ensure(MeshIdentity(tmp_path / "mesh"))


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def identity_of(cert_path) -> str:
    """The SPIFFE ID a certificate names."""
    [uri] = (
        load(cert_path)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.UniformResourceIdentifier)
    )
    return uri


def test_one_certificate_per_process_names_its_spiffe_id_and_serves_both_ends(made):
    ca = load(made.ca)
    for name in IDENTITIES:
        cert = load(made.cert(name))
        cert.verify_directly_issued_by(ca)
        assert identity_of(made.cert(name)) == f"spiffe://shopmesh.local/{name}"
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [name]
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        both = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert usages == ({ExtendedKeyUsageOID.CLIENT_AUTH} if name == "operator" else both)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= mesh_identity.CERT_LIFETIME + dt.timedelta(
            minutes=5
        )
        assert stat.S_IMODE(made.key(name).stat().st_mode) == 0o600
        assert made.bundle(name).read_bytes() == made.ca.read_bytes()
    assert stat.S_IMODE(made.ca_key.stat().st_mode) == 0o600
    # a process is given its own directory: the CA's key is in none of them
    assert all("ca-key.pem" not in {p.name for p in made.directory(name).rglob("*")} for name in IDENTITIES)


def test_the_mesh_ca_is_not_the_edge_ca(made, tmp_path):
    edge = credentials.ensure(credentials.Credentials(tmp_path / "credentials"))
    with pytest.raises(ValueError):
        load(made.cert("orders")).verify_directly_issued_by(load(edge.ca))
    assert mesh_identity.for_data_dir(tmp_path).root == edge.root / "mesh"


def test_an_identity_is_published_at_once_and_the_old_generation_removed(made):
    directory = made.directory("orders")
    before = (directory / "..data").readlink()
    assert {p.name for p in directory.iterdir()} == {"..data", str(before), "cert.pem", "key.pem", "ca.pem"}
    assert made.cert("orders").readlink() == Path("..data") / "cert.pem"
    mesh_identity.ensure(made, rotate=True)
    after = (directory / "..data").readlink()
    assert after != before and not (directory / before).exists()
    assert {p.name for p in directory.iterdir()} == {"..data", str(after), "cert.pem", "key.pem", "ca.pem"}
    assert stat.S_IMODE((directory / after).stat().st_mode) == 0o700


def test_a_rotation_makes_every_certificate_anew_under_the_same_ca(made):
    before = {name: made.cert(name).read_bytes() for name in IDENTITIES}
    ca = made.ca.read_bytes()
    mesh_identity.ensure(made, rotate=True)
    assert all(made.cert(name).read_bytes() != before[name] for name in IDENTITIES)
    assert made.ca.read_bytes() == ca


def test_a_new_ca_is_trusted_beside_the_old_one_until_that_ends(tmp_path):
    now = dt.datetime.now(dt.UTC)
    # the first CA was made 200 days ago: it ends in 165 days
    made = mesh_identity.ensure(MeshIdentity(tmp_path / "mesh"), now=now - dt.timedelta(days=200))
    old_ca = made.ca.read_text()
    mesh_identity.ensure(made, now=now, rotate_ca=True)
    new_ca = made.ca.read_text()
    assert new_ca != old_ca
    for name in IDENTITIES:
        load(made.cert(name)).verify_directly_issued_by(load(made.ca))
        assert made.bundle(name).read_text() == new_ca + old_ca
    mesh_identity.ensure(made, now=now + dt.timedelta(days=170))
    assert made.ca.read_text() == new_ca
    assert all(made.bundle(name).read_text() == new_ca for name in IDENTITIES)


def test_an_operators_own_ca_signs_and_its_key_is_not_copied(made, tmp_path):
    own = mesh_identity.ensure(MeshIdentity(tmp_path / "own"), [])
    mesh_identity.ensure(made, own_ca=(own.ca, own.ca_key))
    for name in IDENTITIES:
        load(made.cert(name)).verify_directly_issued_by(load(own.ca))
    assert made.ca.read_bytes() == own.ca.read_bytes() and not made.ca_key.exists()


def test_a_second_start_keeps_what_is_still_good(made):
    before = {path: path.read_bytes() for name in IDENTITIES for path in (made.cert(name), made.key(name))}
    mesh_identity.ensure(made)
    assert {path: path.read_bytes() for path in before} == before


def test_a_certificate_with_a_third_of_its_life_left_is_made_anew(made):
    old = made.cert("orders").read_bytes()
    later = dt.datetime.now(dt.UTC) + mesh_identity.CERT_LIFETIME * 0.7
    mesh_identity.ensure(made, now=later)
    assert made.cert("orders").read_bytes() != old
    assert load(made.cert("orders")).not_valid_after_utc > later + mesh_identity.CERT_LIFETIME * 0.9


def test_a_new_ca_means_new_certificates(made):
    serials = {name: load(made.cert(name)).serial_number for name in IDENTITIES}
    # CA and key gone (a CA without its key here would be an operator's, kept as it is)
    made.ca.unlink()
    made.ca_key.unlink()
    mesh_identity.ensure(made)
    ca = load(made.ca)
    for name in IDENTITIES:
        cert = load(made.cert(name))
        cert.verify_directly_issued_by(ca)  # raises unless the new CA signed it
        assert (cert.issuer, cert.serial_number != serials[name]) == (ca.subject, True)


def context(made, name: str, purpose: ssl.Purpose) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cafile=str(made.ca))
    ctx.load_cert_chain(made.cert(name), made.key(name))
    ctx.check_hostname = False  # identities are URIs, checked by the mesh, not host names
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> dict:
    """One TLS handshake on loopback: the client certificate the server saw ("peer"), or
    the error with which a side refused ("error")."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict = {}

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(connection, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(b"k")
        except (ssl.SSLError, OSError) as error:
            seen["error"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            try:
                with client_ctx.wrap_socket(raw) as tls:
                    tls.recv(1)  # under TLS 1.3 the server's verdict on the client arrives here
            except (ssl.SSLError, OSError) as error:
                seen.setdefault("error", error)
    finally:
        thread.join(5)
        listener.close()
    return seen


def test_two_processes_of_the_mesh_authenticate_each_other(made):
    seen = handshake(context(made, "orders", ssl.Purpose.CLIENT_AUTH), context(made, "envoy", ssl.Purpose.SERVER_AUTH))
    assert "error" not in seen, seen
    assert ("URI", "spiffe://shopmesh.local/envoy") in seen["peer"]["subjectAltName"]


def test_a_certificate_of_another_ca_is_refused(made, tmp_path):
    stranger = mesh_identity.ensure(MeshIdentity(tmp_path / "other"), ["envoy"])
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(made.ca))
    client.load_cert_chain(stranger.cert("envoy"), stranger.key("envoy"))
    client.check_hostname = False
    seen = handshake(context(made, "orders", ssl.Purpose.CLIENT_AUTH), client)
    assert "peer" not in seen and "certificate" in str(seen["error"]).lower(), seen


def test_the_cli_prints_paths_and_no_key_material(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "devmesh.mesh_identity"],
        env={"SHOPMESH_DATA_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "spiffe://shopmesh.local/orders" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_a_new_ca_is_trusted_everywhere_before_any_certificate_it_signed_is_used(made):
    old_ca = made.ca.read_text()
    old_certs = {name: made.cert(name).read_bytes() for name in IDENTITIES}
    seen = {}

    def settle():  # what a running mesh has when it takes the new files
        seen.update({name: (made.cert(name).read_bytes(), made.bundle(name).read_text()) for name in IDENTITIES})

    mesh_identity.ensure(made, rotate_ca=True, settle=settle)
    new_ca = made.ca.read_text()
    assert seen == {name: (old_certs[name], new_ca + old_ca) for name in IDENTITIES}
    for name in IDENTITIES:
        load(made.cert(name)).verify_directly_issued_by(load(made.ca))
        assert made.bundle(name).read_text() == new_ca + old_ca


def test_a_ca_brought_by_the_operator_is_never_replaced_unasked(made, tmp_path):
    own = mesh_identity.ensure(MeshIdentity(tmp_path / "own"), [])
    mesh_identity.ensure(made, own_ca=(own.ca, own.ca_key))
    certs = {name: made.cert(name).read_bytes() for name in IDENTITIES}
    mesh_identity.ensure(made)  # nothing due: fine without the key
    assert {name: made.cert(name).read_bytes() for name in IDENTITIES} == certs
    with pytest.raises(config.ConfigError, match="--ca-cert"):
        mesh_identity.ensure(made, rotate=True)  # something to sign, and no key to sign with
    assert made.ca.read_bytes() == own.ca.read_bytes()
    mesh_identity.ensure(made, rotate_ca=True)  # asked for: a CA of ShopMesh's own
    assert made.ca.read_bytes() != own.ca.read_bytes() and made.ca_key.exists()
