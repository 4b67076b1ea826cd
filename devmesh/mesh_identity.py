"""Identities inside the mesh: a mesh CA of its own (apart from the edge's, which public
clients trust) and one short-lived certificate per process, named by a SPIFFE ID such as
spiffe://shopmesh.local/orders. Each certificate serves for both ends of mutual TLS: a
service presents it to its callers and to Envoy's mesh listener; Envoy presents its own
to every service.

Made into the data directory by `make up` and the tests, never committed; private keys
0600. A certificate with less than a third of its life left, or signed by a CA that was
replaced, is made anew at start.

    python -m devmesh.mesh_identity      # creates what is missing, prints the paths
"""

import datetime as dt
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devmesh import credentials

TRUST_DOMAIN = "shopmesh.local"
# every process that takes part in mutual TLS
IDENTITIES = ("envoy", "orders", "inventory", "notifications")
CA_LIFETIME = dt.timedelta(days=365)
# short-lived: a stolen key is of use for a day at most
CERT_LIFETIME = dt.timedelta(hours=24)


def spiffe_id(name: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/{name}"


@dataclass(frozen=True)
class MeshIdentity:
    """Where one data directory keeps the mesh CA and each process's certificate."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-key.pem"

    def cert(self, name: str) -> Path:
        return self.root / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.root / f"{name}-key.pem"


def for_credentials(made: credentials.Credentials) -> MeshIdentity:
    return MeshIdentity(made.root / "mesh")


def ensure(
    identity: MeshIdentity, names: Iterable[str] = IDENTITIES, now: dt.datetime | None = None,
    trust_domain: str = TRUST_DOMAIN,
) -> MeshIdentity:
    """Creates the mesh CA and a certificate for each of names where missing, near its
    end, or signed by another CA; keeps the rest."""
    now = now or dt.datetime.now(dt.UTC)
    if not identity.ca.exists() or not identity.ca_key.exists() or _renew_due(identity.ca, CA_LIFETIME, now):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        credentials.write_private_key(identity.ca_key, ca_key)
        credentials.write_file(identity.ca, credentials.pem(credentials.ca_certificate(ca_key, now, "ShopMesh mesh CA", CA_LIFETIME)))
    ca_cert = x509.load_pem_x509_certificate(identity.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(identity.ca_key.read_bytes(), password=None)
    for name in names:
        cert, key_path = identity.cert(name), identity.key(name)
        if cert.exists() and key_path.exists() and not _renew_due(cert, CERT_LIFETIME, now) and _signed_by(cert, ca_cert):
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        issued = credentials.leaf_certificate(
            key, (ca_cert, ca_key), now, CERT_LIFETIME, name,
            [x509.UniformResourceIdentifier(spiffe_id(name, trust_domain))],
            # both ends of mutual TLS: the same certificate serves and calls
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        # the key first: a reader that finds the new certificate finds its key too
        credentials.write_private_key(key_path, key)
        credentials.write_file(cert, credentials.pem(issued))
    return identity


def identity_of(cert_path: Path) -> str:
    """The SPIFFE ID a certificate names."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    [uri] = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    return uri


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


def main() -> int:
    identity = ensure(for_credentials(credentials.for_env(os.environ)))
    print(f"CA={identity.ca}")
    for name in IDENTITIES:
        print(f"{name}={identity.cert(name)} {identity.key(name)} {spiffe_id(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
