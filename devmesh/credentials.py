"""Development credentials, made on first start by `make up`, the tests and compose:
a token-signing key with the JWKS that Envoy verifies tokens against, and a CA with
a certificate for Envoy's TLS listener.

All of it lives in the data directory, is never committed, and every private key is
written with mode 0600. A production deployment brings its own: an identity
provider's JWKS (SHOPMESH_JWKS_URL or SHOPMESH_JWKS_FILE) and a real certificate
(ENVOY_TLS_CERT, ENVOY_TLS_KEY).

    python -m devmesh.credentials      # creates what is missing, prints the paths
"""

import base64
import datetime as dt
import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm

from meshkit import config

# The names a browser, curl or grpcurl on this machine use for the edge.
EDGE_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
CERT_DAYS = 90
# a certificate this close to its end is made anew at start
RENEW_BEFORE = dt.timedelta(days=30)
# ES256: an asymmetric algorithm Envoy verifies and every identity provider offers
TOKEN_ALGORITHM = "ES256"
# the kinds of CA key that sign certificates with SHA-256 (Ed25519's and ML-DSA's take no hash)
CaKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | dsa.DSAPrivateKey


@dataclass(frozen=True)
class Credentials:
    """Where one data directory keeps its development credentials."""

    root: Path

    @property
    def signing_key(self) -> Path:
        return self.root / "auth" / "signing-key.pem"

    @property
    def jwks(self) -> Path:
        return self.root / "auth" / "jwks.json"

    @property
    def ca(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "tls" / "ca-key.pem"

    @property
    def edge_cert(self) -> Path:
        return self.root / "tls" / "edge.pem"

    @property
    def edge_key(self) -> Path:
        return self.root / "tls" / "edge-key.pem"

    def under(self, env: Mapping[str, str]) -> dict[str, str]:
        """env, with the variables that point Envoy at these files wherever env sets none
        (an empty value, as compose passes `${VAR:-}`, counts as none)."""
        defaults = {
            "SHOPMESH_JWKS_FILE": str(self.jwks),
            "ENVOY_TLS_CERT": str(self.edge_cert),
            "ENVOY_TLS_KEY": str(self.edge_key),
        }
        return {**env, **{name: value for name, value in defaults.items() if not env.get(name)}}


def for_env(env: Mapping[str, str]) -> Credentials:
    """The credentials of the data directory that env names (SHOPMESH_DATA_DIR)."""
    return Credentials(config.data_dir(env) / "credentials")


def ensure(credentials: Credentials, now: dt.datetime | None = None) -> Credentials:
    """Creates whatever is missing or about to expire; keeps everything else as it is,
    so tokens minted earlier stay valid across restarts."""
    now = now or dt.datetime.now(dt.UTC)
    if not credentials.signing_key.exists() or not credentials.jwks.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(credentials.signing_key, key)
        write_file(credentials.jwks, json.dumps(jwks_of(key.public_key()), indent=2) + "\n")
    if (
        not credentials.ca.exists()
        or not credentials.ca_key.exists()
        or expires_within(credentials.ca, now, RENEW_BEFORE)
    ):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(credentials.ca_key, ca_key)
        write_file(
            credentials.ca, pem(ca_certificate(ca_key, now, "ShopMesh development CA", dt.timedelta(days=CA_DAYS)))
        )
        credentials.edge_cert.unlink(missing_ok=True)  # signed by the old CA
    if (
        not credentials.edge_cert.exists()
        or not credentials.edge_key.exists()
        or expires_within(credentials.edge_cert, now, RENEW_BEFORE)
    ):
        issuer = (x509.load_pem_x509_certificate(credentials.ca.read_bytes()), load_ca_key(credentials.ca_key))
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(credentials.edge_key, key)
        edge = leaf_certificate(
            key,
            issuer,
            now,
            dt.timedelta(days=CERT_DAYS),
            "localhost",
            _edge_names(),
            [ExtendedKeyUsageOID.SERVER_AUTH],
        )
        write_file(credentials.edge_cert, pem(edge))
    return credentials


def load_ca_key(path: Path) -> CaKey:
    """The CA's unencrypted PEM key at path; TypeError where it is of a kind that cannot sign
    a certificate with SHA-256."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, CaKey):
        raise TypeError(f"{path} holds a {type(key).__name__}, which cannot sign certificates here")
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The JWK thumbprint (RFC 7638) of a public key: stable, and names no secret."""
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical.encode())
    return base64.urlsafe_b64encode(digest.finalize()).rstrip(b"=").decode()


def jwks_of(public_key: ec.EllipticCurvePublicKey) -> dict:
    """A JWK Set holding one public key (RFC 7517)."""
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    return {"keys": [{**jwk, "kid": key_id(public_key), "alg": TOKEN_ALGORITHM, "use": "sig"}]}


def expires_within(cert_path: Path, now: dt.datetime, margin: dt.timedelta) -> bool:
    """Whether the certificate at cert_path ends less than margin after now."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - now < margin


def _edge_names() -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in EDGE_NAMES:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def ca_certificate(
    key: ec.EllipticCurvePrivateKey, now: dt.datetime, common_name: str, lifetime: dt.timedelta
) -> x509.Certificate:
    """A self-signed CA that signs end-entity certificates only (path length 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def leaf_certificate(
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, CaKey],
    now: dt.datetime,
    lifetime: dt.timedelta,
    common_name: str,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
) -> x509.Certificate:
    """An end-entity certificate for key, signed by issuer (its certificate and key)."""
    ca_cert, ca_key = issuer
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_file(path, private_pem(key), mode=0o600)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Writes atomically (a reader never sees half a key) with mode set from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(partial, path)


def main() -> int:
    try:
        credentials = ensure(for_env(os.environ))
    except config.ConfigError as error:
        print(f"credentials: {error}", file=sys.stderr)
        return 2
    for name, path in credentials.under({}).items():
        print(f"{name}={path}")
    print(f"CA={credentials.ca}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
