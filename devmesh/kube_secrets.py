"""The Secrets and the ConfigMap that deploy/kubernetes reads and no file of it holds, made
from this machine's development credentials, for a trial cluster:

    python -m devmesh.kube_secrets --namespace shopmesh-dev | kubectl apply -f -

Made (or renewed where due) in SHOPMESH_DATA_DIR, as `make up` does, so that a token from
`python -m devmesh.token` is good against the cluster too:
  shopmesh-mesh-<process>  each process's mesh identity (tls.crt, tls.key, ca.crt; the layout
                           cert-manager's Certificates give, which may replace these)
  shopmesh-edge-tls        Envoy's public certificate (for localhost: use it through
                           `kubectl port-forward`; a real host name needs a real certificate)
  shopmesh-jwks            the public keys tokens are signed with (a ConfigMap)
  postgres, shopmesh-databases
                           the in-cluster PostgreSQL's password (made once, kept in the data
                           directory) and each service's URL of it; --no-databases leaves
                           them out, for a database of your own

Mesh certificates last 24 hours: run this again (it renews those with less than 8 hours
left) and apply, more often than every 8 hours; the pods take the new files without a restart.
The output holds private keys: pipe it, or --out writes a file only its owner may read.
"""

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from devmesh import credentials, mesh_identity
from meshkit import config, mesh_tls

PROCESSES = (mesh_tls.ENVOY, *mesh_identity.SERVICES)
POSTGRES_USER = "shopmesh"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(name: str, data: dict[str, bytes], secret_type: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {"name": name},
        "data": {key: _b64(value) for key, value in data.items()},
    }


def postgres_password(data_dir: Path) -> str:
    """The in-cluster PostgreSQL's password: made once, then the same on every run."""
    path = data_dir / "credentials" / "kube" / "postgres-password"
    if not path.exists():
        credentials.write_file(path, secrets.token_urlsafe(24), mode=0o600)
    return path.read_text().strip()


def documents(env: dict[str, str], databases: bool = True, postgres_host: str = "postgres") -> Iterator[dict]:
    """The manifests, renewing the development credentials first where due."""
    data_dir = config.data_dir(env)
    made = credentials.ensure(credentials.for_env(env))
    identity = mesh_identity.ensure(mesh_identity.for_data_dir(data_dir))
    for name in PROCESSES:
        yield _secret(
            f"shopmesh-mesh-{name}",
            {
                "tls.crt": identity.cert(name).read_bytes(),
                "tls.key": identity.key(name).read_bytes(),
                "ca.crt": identity.bundle(name).read_bytes(),
            },
            "kubernetes.io/tls",
        )
    yield _secret(
        "shopmesh-edge-tls",
        {"tls.crt": made.edge_cert.read_bytes(), "tls.key": made.edge_key.read_bytes()},
        "kubernetes.io/tls",
    )
    yield {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shopmesh-jwks"},
        "data": {"jwks.json": made.jwks.read_text()},
    }
    if databases:
        password = postgres_password(data_dir)
        yield _secret("postgres", {"password": password.encode()})
        yield _secret(
            "shopmesh-databases",
            {
                service: f"postgresql+psycopg://{POSTGRES_USER}:{password}@{postgres_host}:5432/{service}".encode()
                for service in mesh_identity.SERVICES
            },
        )


def render(env: dict[str, str], namespace: str | None = None, **options) -> str:
    docs = list(documents(env, **options))
    if namespace:
        for doc in docs:
            doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(docs, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.kube_secrets", description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", help="put them in this namespace (default: kubectl's current one)")
    parser.add_argument(
        "--no-databases", action="store_true", help="leave out postgres and shopmesh-databases (a database of your own)"
    )
    parser.add_argument("--postgres-host", default="postgres", help="the in-cluster PostgreSQL's Service name")
    parser.add_argument("--out", type=Path, help="write here (mode 0600) instead of standard output")
    args = parser.parse_args(argv)
    try:
        text = render(
            dict(os.environ), args.namespace, databases=not args.no_databases, postgres_host=args.postgres_host
        )
    except config.ConfigError as error:
        print(f"kube_secrets: {error}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        credentials.write_file(args.out, text, mode=0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
