# The infra ("pause") container of every pod podman kube play makes: podman builds one from
# catatonit, which Debian packages but this machine need not have installed.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends catatonit \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/catatonit", "-P"]
