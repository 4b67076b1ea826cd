"""Identities inside the mesh: a mesh CA of its own (apart from the edge's, which public
clients trust) and one short-lived certificate per process, named by a SPIFFE ID such as
spiffe://shopmesh.local/orders. Each certificate serves for both ends of mutual TLS: a
service presents it to its callers and to Envoy's mesh listener; Envoy presents its own
to every service. The operator's certificate calls only, for grpcurl on a service's port.

Made into the data directory by `make up`, the tests and compose's init container, never
committed; private keys 0600. Layout (meshkit.mesh_tls reads one identity's directory):

    mesh/ca/ca.pem, ca-key.pem            the CA (its key is never handed to a process)
    mesh/<name>/cert.pem, key.pem, ca.pem  one identity, with the CA bundle it trusts

An identity's files are published together, as Kubernetes publishes a Secret volume: a
new directory, then one atomic swap of the `..data` link that cert.pem, key.pem and ca.pem
point through. A reader (Envoy's file-watched SDS, a service's credentials) never sees a
certificate of one generation with the key of another.

A certificate with less than a third of its life left, or signed by a CA that was
replaced, is made anew by ensure(). A new CA is first added to every trust bundle, and
only then used; the replaced one stays in the bundles until it expires, so peers still
holding certificates it signed are trusted until they reload.

    python -m devmesh.mesh_identity                  # creates what is missing or near its end
    python -m devmesh.mesh_identity --rotate         # new certificates for every identity now
    python -m devmesh.mesh_identity --rotate-ca      # a new CA too (trusted first, then used)
    python -m devmesh.mesh_identity --ca-cert C --ca-key K   # signed by your own CA
"""

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devmesh import credentials
from meshkit import config
from meshkit.mesh_tls import (
    CA_FILE,
    CERT_FILE,
    ENVOY,
    KEY_FILE,
    OPERATOR,
    RENEW_CHECK_SECONDS,
    default_directory,
    spiffe_id,
)

SERVICES = ("orders", "inventory", "notifications")
# every process that takes part in mutual TLS, and the operator who debugs one
IDENTITIES = (ENVOY, *SERVICES, OPERATOR)
CA_LIFETIME = dt.timedelta(days=365)
# short-lived: a stolen key is of use for a day at most
CERT_LIFETIME = dt.timedelta(hours=24)
DATA_LINK = "..data"
# a running mesh takes new files within this (Envoy at once, a service's calls within
# meshkit.mesh_tls.RENEW_CHECK_SECONDS)
SETTLE_SECONDS = 2 * RENEW_CHECK_SECONDS


@dataclass(frozen=True)
class MeshIdentity:
    """Where one data directory keeps the mesh CA and each identity."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca-key.pem"

    @property
    def previous_ca(self) -> Path:
        """The CA before the last rotation, trusted until it expires."""
        return self.root / "ca" / "previous-ca.pem"

    def directory(self, name: str) -> Path:
        return self.root / name

    def cert(self, name: str) -> Path:
        return self.directory(name) / CERT_FILE

    def key(self, name: str) -> Path:
        return self.directory(name) / KEY_FILE

    def bundle(self, name: str) -> Path:
        return self.directory(name) / CA_FILE


def for_data_dir(data_dir: Path) -> MeshIdentity:
    return MeshIdentity(default_directory(data_dir, ENVOY).parent)


def under(identity: MeshIdentity, env: Mapping[str, str]) -> dict[str, str]:
    """env, with Envoy pointed at its identity here unless env names another."""
    return {**env, "ENVOY_MESH_TLS_DIR": env.get("ENVOY_MESH_TLS_DIR") or str(identity.directory(ENVOY))}


def ensure(
    identity: MeshIdentity,
    names: Iterable[str] = IDENTITIES,
    now: dt.datetime | None = None,
    *,
    rotate: bool = False,
    rotate_ca: bool = False,
    own_ca: tuple[Path, Path] | None = None,
    settle: Callable[[], None] = lambda: None,
) -> MeshIdentity:
    """Creates the mesh CA and each identity of names where missing, near its end, or
    signed by another CA; keeps the rest. rotate: new certificates for all of names;
    rotate_ca: a new CA as well. own_ca (certificate and key files): sign with that CA.

    A new CA reaches a running mesh in two steps, so that no handshake fails between
    them: first every identity's bundle trusts both CAs (its certificate unchanged), and
    once settle() returns (time for every process to take that), the new CA's
    certificates follow."""
    now = now or dt.datetime.now(dt.UTC)
    names = list(names)
    ca_key: credentials.CaKey | None
    if own_ca is not None:
        ca_cert, ca_key, new_ca = _adopt_ca(identity, own_ca)
    else:
        # a CA without its key here is one an operator brought: never replaced by one of our own unasked
        brought = identity.ca.exists() and not identity.ca_key.exists()
        new_ca = rotate_ca or not identity.ca.exists() or (not brought and _renew_due(identity.ca, CA_LIFETIME, now))
        if new_ca:
            _new_ca(identity, now)
        ca_cert = x509.load_pem_x509_certificate(identity.ca.read_bytes())
        ca_key = None if brought and not new_ca else credentials.load_ca_key(identity.ca_key)
    bundle = _trust_bundle(identity, now)
    # every one trusts both CAs (a list, not a generator: any() would stop at the first), then settle
    if new_ca and any([_trust_both(identity, name, bundle) for name in names]):  # noqa: C419
        settle()
    for name in names:
        if not rotate and _still_good(identity, name, ca_cert, bundle, now):
            continue
        if ca_key is None:
            raise config.ConfigError(
                f"{identity.ca} is a CA you brought, and its key is not kept here: sign with --ca-cert and "
                "--ca-key again (or --rotate-ca for a mesh CA of ShopMesh's own)"
            )
        _issue(
            identity,
            name,
            (ca_cert, ca_key),
            bundle,
            now,
            # the SPIFFE ID is the identity; the DNS name is what a gRPC client checks
            [x509.UniformResourceIdentifier(spiffe_id(name)), x509.DNSName(name)],
            # both ends of mutual TLS (the operator only calls)
            [ExtendedKeyUsageOID.CLIENT_AUTH]
            if name == OPERATOR
            else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        )
    return identity


def issue(
    identity: MeshIdentity,
    name: str,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    now: dt.datetime | None = None,
) -> None:
    """A certificate of the mesh CA, published as the identity called name, with other
    subject names than ensure() gives (the benchmark's echo stands in for all three services)."""
    now = now or dt.datetime.now(dt.UTC)
    ca = (x509.load_pem_x509_certificate(identity.ca.read_bytes()), credentials.load_ca_key(identity.ca_key))
    _issue(identity, name, ca, _trust_bundle(identity, now), now, names, usages)


def _issue(
    identity: MeshIdentity,
    name: str,
    ca: tuple[x509.Certificate, credentials.CaKey],
    bundle: str,
    now: dt.datetime,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
) -> None:
    """A new key and a certificate of ca for it, published with bundle as the identity name."""
    key = ec.generate_private_key(ec.SECP256R1())
    issued = credentials.leaf_certificate(key, ca, now, CERT_LIFETIME, name, names, usages)
    publish(
        identity.directory(name),
        {
            CERT_FILE: (credentials.pem(issued), 0o644),
            KEY_FILE: (credentials.private_pem(key), 0o600),
            CA_FILE: (bundle, 0o644),
        },
    )


def publish(directory: Path, files: dict[str, tuple[str, int]]) -> None:
    """Puts files (name -> text, mode) in place at once: written into a new directory,
    made current by renaming one link over `..data`, the old generation then removed."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    generation = directory / f"..{time.time_ns()}"
    generation.mkdir(mode=0o700)
    for name, (text, mode) in files.items():
        credentials.write_file(generation / name, text, mode)
    link = directory / f"{DATA_LINK}.partial"
    link.unlink(missing_ok=True)
    link.symlink_to(generation.name)
    previous = os.readlink(directory / DATA_LINK) if (directory / DATA_LINK).is_symlink() else None
    os.replace(link, directory / DATA_LINK)
    for name in files:
        entry = directory / name
        if not entry.is_symlink():
            entry.unlink(missing_ok=True)
            entry.symlink_to(Path(DATA_LINK) / name)
    if previous and previous != generation.name:
        shutil.rmtree(directory / previous, ignore_errors=True)


def _trust_both(identity: MeshIdentity, name: str, bundle: str) -> bool:
    """The identity's certificate and key as they are, with bundle (both CAs); whether
    there was one to keep."""
    if not (identity.cert(name).exists() and identity.key(name).exists()):
        return False
    publish(
        identity.directory(name),
        {
            CERT_FILE: (identity.cert(name).read_text(), 0o644),
            KEY_FILE: (identity.key(name).read_text(), 0o600),
            CA_FILE: (bundle, 0o644),
        },
    )
    return True


def _new_ca(identity: MeshIdentity, now: dt.datetime) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    _keep_previous(identity)
    # the key first: a CA certificate is never found beside another CA's key
    credentials.write_private_key(identity.ca_key, ca_key)
    credentials.write_file(
        identity.ca, credentials.pem(credentials.ca_certificate(ca_key, now, "ShopMesh mesh CA", CA_LIFETIME))
    )


def _adopt_ca(identity: MeshIdentity, own_ca: tuple[Path, Path]) -> tuple[x509.Certificate, credentials.CaKey, bool]:
    """The operator's CA, read where it is (its key is not copied); its certificate
    becomes the mesh's. Also whether it replaced another."""
    cert_path, key_path = own_ca
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = credentials.load_ca_key(key_path)
    except (OSError, ValueError, TypeError) as error:
        raise config.ConfigError(f"the mesh CA {cert_path} / {key_path} cannot be read: {error}") from None
    if cert.public_key() != key.public_key():
        raise config.ConfigError(f"{key_path} is not the key of {cert_path}")
    replaced = not identity.ca.exists() or x509.load_pem_x509_certificate(identity.ca.read_bytes()) != cert
    if replaced:
        identity.ca_key.unlink(missing_ok=True)
        _keep_previous(identity)
        credentials.write_file(identity.ca, credentials.pem(cert))
    return cert, key, replaced


def _keep_previous(identity: MeshIdentity) -> None:
    """The CA being replaced is trusted on until it ends: certificates it signed keep
    working until their holders reload new ones."""
    if identity.ca.exists():
        credentials.write_file(identity.previous_ca, identity.ca.read_text())


def _trust_bundle(identity: MeshIdentity, now: dt.datetime) -> str:
    bundle = identity.ca.read_text()
    if identity.previous_ca.exists() and not credentials.expires_within(identity.previous_ca, now, dt.timedelta(0)):
        bundle += identity.previous_ca.read_text()
    return bundle


def _still_good(identity: MeshIdentity, name: str, ca_cert: x509.Certificate, bundle: str, now: dt.datetime) -> bool:
    cert = identity.cert(name)
    return (
        cert.exists()
        and identity.key(name).exists()
        and identity.bundle(name).exists()
        and identity.bundle(name).read_text() == bundle
        and not _renew_due(cert, CERT_LIFETIME, now)
        and _signed_by(cert, ca_cert)
    )


def _renew_due(cert_path: Path, lifetime: dt.timedelta, now: dt.datetime) -> bool:
    """A third of its life left (of a certificate made for lifetime)."""
    return credentials.expires_within(cert_path, now, lifetime / 3)


def _signed_by(cert_path: Path, ca_cert: x509.Certificate) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.mesh_identity", description=__doc__.splitlines()[0])
    parser.add_argument("--rotate", action="store_true", help="new certificates for every identity now")
    parser.add_argument("--rotate-ca", action="store_true", help="a new mesh CA, and new certificates")
    parser.add_argument("--ca-cert", type=Path, help="sign with this CA certificate (PEM) instead of the mesh's own")
    parser.add_argument("--ca-key", type=Path, help="the key of --ca-cert (PEM, unencrypted)")
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        metavar="SECONDS",
        help="with a new CA: how long every process gets to trust it before its "
        f"certificates are used (default {SETTLE_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    if (args.ca_cert is None) != (args.ca_key is None):
        parser.error("--ca-cert and --ca-key go together")

    def settle() -> None:
        print(
            f"every identity now trusts the new CA beside the old; its certificates follow in {args.settle:.0f} s",
            flush=True,
        )
        time.sleep(args.settle)

    try:
        identity = ensure(
            for_data_dir(config.data_dir(os.environ)),
            rotate=args.rotate or args.rotate_ca,
            rotate_ca=args.rotate_ca,
            own_ca=(args.ca_cert, args.ca_key) if args.ca_cert else None,
            settle=settle,
        )
    except config.ConfigError as error:
        print(f"mesh_identity: {error}", file=sys.stderr)
        return 2
    print(f"CA={identity.ca}")
    for name in IDENTITIES:
        print(f"{name}={identity.directory(name)} {spiffe_id(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
