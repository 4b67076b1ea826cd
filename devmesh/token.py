"""Mints a development token, signed with `make up`'s key (in SHOPMESH_DATA_DIR), for
the issuer and audience Envoy checks (SHOPMESH_JWT_ISSUER, SHOPMESH_JWT_AUDIENCE):

    .venv/bin/python -m devmesh.token --email ann@example.com --roles customer
    .venv/bin/python -m devmesh.token --email ops@example.com --roles operator --ttl 600

It prints the token on stdout and nothing else, for use as
`-H "authorization: Bearer $(...)"`. A real deployment gets its tokens from its
identity provider instead.
"""

import argparse
import datetime as dt
import os
import sys
import uuid
from collections.abc import Iterable

import jwt
from cryptography.hazmat.primitives import serialization

from devmesh import credentials
from devmesh.envoy_config import EnvoyParams, params_from_env
from meshkit import config

DEFAULT_TTL_SECONDS = 3600


def mint(
    signing_key,
    params: EnvoyParams,
    email: str,
    roles: Iterable[str],
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    *,
    subject: str | None = None,
    now: dt.datetime | None = None,
    audience: str | None = None,
) -> str:
    """A token for email with roles, valid for ttl_seconds from now, signed with
    signing_key (a private key object) and named by its key id."""
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "iss": params.jwt_issuer,
        "aud": audience or params.jwt_audience,
        "sub": subject or email,
        "email": email,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + dt.timedelta(seconds=ttl_seconds)).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    _set_claim(claims, params.roles_claim, sorted(set(roles)))
    kid = credentials.key_id(signing_key.public_key())
    return jwt.encode(claims, signing_key, algorithm=credentials.TOKEN_ALGORITHM, headers={"kid": kid})


def _set_claim(claims: dict, dotted: str, value) -> None:
    """Sets a claim by its dotted name (realm_access.roles), as Envoy reads it."""
    *parents, last = dotted.split(".")
    for part in parents:
        claims = claims.setdefault(part, {})
    claims[last] = value


def load_signing_key(env) -> object:
    """The private key `make up` signs with; FileNotFoundError if it has not run yet."""
    path = credentials.for_env(env).signing_key
    if not path.exists():
        raise FileNotFoundError(f"no signing key at {path}: run `make up` once (or python -m devmesh.credentials)")
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.token", description=__doc__.splitlines()[0])
    parser.add_argument("--email", required=True, help="the caller's email (the customer an order belongs to)")
    parser.add_argument("--roles", default="customer", help="comma-separated: customer, operator (default customer)")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds the token is valid")
    parser.add_argument("--subject", help="the sub claim (default: the email)")
    args = parser.parse_args(argv)
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    if args.ttl < 1:
        parser.error("--ttl must be at least 1 second")
    try:
        params = params_from_env(os.environ)
        key = load_signing_key(os.environ)
    except (ValueError, FileNotFoundError, config.ConfigError) as error:
        print(f"token: {error}", file=sys.stderr)
        return 2
    if args.ttl > params.jwt_max_lifetime:
        print(
            f"token: --ttl {args.ttl} is over the {params.jwt_max_lifetime} s Envoy accepts "
            "(SHOPMESH_JWT_MAX_LIFETIME_SECONDS)",
            file=sys.stderr,
        )
        return 2
    print(mint(key, params, args.email, roles, args.ttl, subject=args.subject))
    return 0


if __name__ == "__main__":
    sys.exit(main())
