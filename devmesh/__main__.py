"""`make up`: the whole mesh in the foreground on SQLite, with demo data; Ctrl-C stops it."""

import os
import signal
import sys
import time

from devmesh import demo
from devmesh.launcher import Layout, Mesh, MeshError
from meshkit import config

BANNER = """
ShopMesh is up.
  public, TLS (gRPC, gRPC-Web, REST)  https://{public_tls}  (CA: {ca})
  public, plaintext on loopback       http://{public}
  mesh (service to service)           {mesh}
  Envoy admin                         http://{admin}/
  data (SQLite)                       {data}
  emails (Maildir)                    {data}/maildir/new (unless SMTP_HOST is set)
  Envoy logs                          {run_dir}/envoy.log, {run_dir}/envoy-access.log
  mesh identities (mutual TLS)        {identities}/<name>/ (renewed while it runs)

Every call but the catalogue needs a token; development tokens come from this mesh's key:
  ANN=$(.venv/bin/python -m devmesh.token --email ann@example.com --roles customer)
  OPS=$(.venv/bin/python -m devmesh.token --email ops@example.com --roles operator)

Try it:
  grpcurl -cacert {ca} {public_tls} list
  grpcurl -cacert {ca} -H "authorization: Bearer $ANN" \\
      -d '{{"items": [{{"product_id": "WIDGET-1", "quantity": 2}}]}}' \\
      {public_tls} shopmesh.orders.v1.OrderService/CreateOrder
  curl -s --cacert {ca} https://{public_tls}/v1/products
  curl -s --cacert {ca} -H "authorization: Bearer $ANN" -X POST https://{public_tls}/v1/orders \\
      -H 'content-type: application/json' -d '{{"items": [{{"productId": "GADGET-2", "quantity": 1}}]}}'
  curl -s --cacert {ca} -H "authorization: Bearer $ANN" https://{public_tls}/v1/orders
  curl -s --cacert {ca} -H "authorization: Bearer $OPS" -X POST https://{public_tls}/v1/orders/ORDER_ID:confirm

A service's own port takes only mutual TLS, e.g. with the operator's identity:
  grpcurl -cacert {identities}/operator/ca.pem -cert {identities}/operator/cert.pem \\
      -key {identities}/operator/key.pem -servername orders {orders} list

Ctrl-C stops everything.
"""
# how often the running mesh looks for certificates near their end (each lives 24 h)
RENEW_EVERY_SECONDS = 600


def main() -> None:
    env = dict(os.environ)
    try:
        data = config.data_dir(env)
    except config.ConfigError as error:
        sys.exit(f"make up: {error}")
    layout = Layout.from_env({**env, "SHOPMESH_DATA_DIR": str(data)})
    run_dir = data / "run"
    try:
        mesh = Mesh(layout, run_dir, log_files=False)
    except config.ConfigError as error:
        sys.exit(f"make up: {error}")
    # Ctrl-C and SIGTERM both stop the mesh in order, also when started from a
    # shell that made SIGINT ignored for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        mesh.start()
        created = demo.load(layout.public, mesh.token())
        if created:
            print(f"Loaded demo products: {', '.join(created)}", flush=True)
        print(
            BANNER.format(
                public=layout.public,
                public_tls=layout.public_tls,
                ca=layout.credentials.ca,
                mesh=layout.mesh,
                admin=layout.admin,
                data=data,
                run_dir=run_dir,
                identities=layout.mesh_identity.root,
                orders=layout.address("ORDERS_LISTEN"),
            ),
            flush=True,
        )
        while True:
            time.sleep(RENEW_EVERY_SECONDS)
            mesh.renew_identities()
    except KeyboardInterrupt:
        pass
    except MeshError as error:
        print(f"make up: {error}", file=sys.stderr)
        mesh.stop()
        sys.exit(1)
    print("Stopping ShopMesh ...", flush=True)
    # a second Ctrl-C (or make passing its SIGTERM on) must not cut the stop short and
    # leave services running
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    codes = mesh.stop()
    print("Stopped: " + ", ".join(f"{name} (exit {code})" for name, code in codes.items()), flush=True)


if __name__ == "__main__":
    main()
