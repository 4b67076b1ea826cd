"""Tokens that must not get in, each tried against the real Envoy: a forged algorithm,
a key confusion, the wrong issuer, no expiry, a lifetime over the maximum, a tampered
payload, a token where none is read. Every one is refused as UNAUTHENTICATED (a query
string is refused before any token is looked for) and none reaches a service."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devmesh import credentials
from devmesh import token as tokens
from devmesh.envoy_config import params_from_env
from devmesh.launcher import Mesh
from tests.helpers.http_calls import Reply

# Envoy's token checks do not depend on the database: one mesh is enough.
pytestmark = pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


@pytest.fixture(scope="module")
def signing(mesh):
    return tokens.load_signing_key(mesh.layout.env), params_from_env(mesh.layout.env)


def claims(params, **changes) -> dict:
    now = int(time.time())
    found = {
        "iss": params.jwt_issuer,
        "aud": params.jwt_audience,
        "sub": "mallory@example.com",
        "email": "mallory@example.com",
        "roles": ["operator"],
        "iat": now,
        "exp": now + 600,
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def refused(rest, token: str, path: str = "/v1/orders") -> None:
    reply = rest("GET", path, token=token)
    assert (reply.status, reply.body["code"]) == (401, 16), reply
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_alg_none_is_refused(rest, signing):
    _, params = signing
    refused(rest, unsigned({"alg": "none", "typ": "JWT"}, claims(params)))


def test_hs256_signed_with_the_public_key_is_refused(rest, signing):
    """Key confusion: a verifier that took the public key as an HMAC secret would accept this."""
    key, params = signing
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, body = {"alg": "HS256", "typ": "JWT"}, claims(params)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    refused(rest, f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"exp": None},  # no expiry at all
        {"exp": int(time.time()) + 10 * 86400, "iat": int(time.time())},  # longer than the maximum lifetime
        {"nbf": int(time.time()) + 3600},  # not valid yet
    ],
    ids=["wrong issuer", "no exp", "lifetime over the maximum", "not yet valid"],
)
def test_tokens_with_bad_claims_are_refused(rest, signing, change):
    key, params = signing
    kid = credentials.key_id(key.public_key())
    refused(rest, jwt.encode(claims(params, **change), key, algorithm="ES256", headers={"kid": kid}))


def test_a_tampered_payload_is_refused(rest, signing, mesh):
    key, params = signing
    genuine = tokens.mint(key, params, "ann@example.com", ["customer"])
    header, _, signature = genuine.split(".")
    promoted = b64(json.dumps(claims(params, email="ann@example.com", roles=["operator"])).encode())
    refused(rest, f"{header}.{promoted}.{signature}")


def test_an_expired_token_is_refused_even_where_none_is_needed(rest, signing):
    key, params = signing
    expired = tokens.mint(
        key, params, "ann@example.com", ["customer"], 60, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    refused(rest, expired, "/v1/products")


def test_a_token_in_the_query_string_is_never_read_nor_logged(
    rest: Callable[..., Reply], mesh: Mesh, operator_token: str
) -> None:
    reply = rest("GET", f"/v1/orders?access_token={operator_token}", token=None)
    # the transcoder refuses a query parameter the request has no field for, before any token check
    assert (reply.status, reply.body) == (
        400,
        {
            "code": 3,
            "message": 'Could not find field "access_token" in the type "shopmesh.orders.v1.ListOrdersRequest".',
        },
    )
    time.sleep(1.5)  # the access log is flushed every second
    assert operator_token not in (mesh.run_dir / "envoy-access.log").read_text()


def test_a_cookie_is_read_for_watch_order_only(rest, mesh, public, new_product, operator_token):
    """EventSource sends cookies, not headers; anything that changes state needs the header,
    so a cookie a browser sends by itself can never place or cancel an order."""
    cookie = {"cookie": f"shopmesh_token={operator_token}"}
    assert rest("GET", "/v1/orders", headers=cookie, token=None).status == 401
    assert (
        rest("POST", "/v1/products", {"productId": "COOKIE-1", "title": "c"}, headers=cookie, token=None).status == 401
    )
    placed = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "cookie@example.com", "items": [{"productId": new_product(1), "quantity": 1}]},
    )
    # cancelled, so that the stream ends after its first message
    rest("POST", f"/v1/orders/{placed.body['orderId']}:cancel")
    watched = rest("GET", f"/v1/orders/{placed.body['orderId']}:watch", headers=cookie, token=None)
    assert watched.status == 200 and "ORDER_STATUS_CANCELLED" in watched.body
