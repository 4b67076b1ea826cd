"""Development credentials: made once, private keys 0600, certificates renewed before
they expire, and a minted token verifies against the JWKS as Envoy checks it."""

import datetime as dt
import json
import re
import stat
import subprocess
import sys

import jwt
import pytest
from cryptography import x509

from devmesh import credentials, token
from devmesh.envoy_config import EnvoyParams


@pytest.fixture
def made(tmp_path):
    return credentials.ensure(credentials.Credentials(tmp_path / "credentials"))


def test_private_keys_are_0600_and_never_beside_a_loose_mode(made):
    for path in (made.signing_key, made.ca_key, made.edge_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(made.signing_key.parent.stat().st_mode) == 0o700


def test_a_second_start_keeps_the_keys(made):
    before = {p: p.read_bytes() for p in (made.signing_key, made.jwks, made.ca, made.edge_cert)}
    credentials.ensure(made)
    assert {p: p.read_bytes() for p in before} == before


def test_a_certificate_near_its_end_is_made_anew_by_the_same_ca(made):
    old = made.edge_cert.read_bytes()
    credentials.ensure(made, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=credentials.CERT_DAYS - 10))
    renewed = x509.load_pem_x509_certificate(made.edge_cert.read_bytes())
    assert made.edge_cert.read_bytes() != old
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    renewed.verify_directly_issued_by(ca)
    names = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_a_minted_token_verifies_against_the_jwks(made):
    params = EnvoyParams(jwks_file=made.jwks)
    key = token.load_signing_key({"SHOPMESH_DATA_DIR": str(made.root.parent)})
    minted = token.mint(key, params, "ann@example.com", ["customer"], 60)
    jwk = json.loads(made.jwks.read_text())["keys"][0]
    assert jwt.get_unverified_header(minted)["kid"] == jwk["kid"]
    verified = jwt.decode(minted, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="shopmesh", issuer="shopmesh-dev")
    assert verified["email"] == "ann@example.com" and verified["roles"] == ["customer"]
    assert verified["exp"] - verified["iat"] == 60


def test_a_nested_roles_claim_is_written_where_envoy_reads_it(made):
    params = EnvoyParams(jwks_file=made.jwks, roles_claim="realm_access.roles")
    key = token.load_signing_key({"SHOPMESH_DATA_DIR": str(made.root.parent)})
    payload = jwt.decode(token.mint(key, params, "a@example.com", ["operator"]), options={"verify_signature": False})
    assert payload["realm_access"] == {"roles": ["operator"]}


def run_token_cli(data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devmesh.token", *args],
        env={"SHOPMESH_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_token_command_prints_one_token_and_nothing_else(made):
    printed = run_token_cli(made.root.parent, "--email", "ann@example.com", "--roles", "customer", "--ttl", "120")
    assert printed.returncode == 0 and printed.stderr == ""
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", printed.stdout)
    claims = jwt.decode(printed.stdout.strip(), options={"verify_signature": False})
    assert (claims["email"], claims["roles"], claims["exp"] - claims["iat"]) == ("ann@example.com", ["customer"], 120)


def test_the_token_command_without_a_key_says_so_in_one_line(tmp_path):
    printed = run_token_cli(tmp_path, "--email", "ann@example.com")
    assert printed.returncode == 2 and printed.stdout == ""
    assert len(printed.stderr.strip().splitlines()) == 1 and "make up" in printed.stderr


def test_what_the_environment_names_wins_and_empty_counts_as_unset(made):
    env = made.under(
        {"ENVOY_TLS_CERT": "/etc/shop/cert.pem", "ENVOY_TLS_KEY": "/etc/shop/key.pem", "SHOPMESH_JWKS_FILE": ""}
    )
    assert (env["ENVOY_TLS_CERT"], env["SHOPMESH_JWKS_FILE"]) == ("/etc/shop/cert.pem", str(made.jwks))
