"""Mutual TLS inside the mesh, a service's side of it.

Every process has one identity: a directory holding its certificate (cert.pem, naming
its SPIFFE ID, e.g. spiffe://shopmesh.local/orders, and its name as a DNS name), its key
(key.pem) and the mesh CA bundle it trusts (ca.pem). A service serves only callers whose
certificate that CA signed, and calls Envoy's mesh listener presenting its own.

The files may be replaced while the service runs (a renewal, a rotation): the server
takes them for every new connection, and MeshChannel moves new calls to a channel that
presents them. Calls in flight finish on the connections they started on.
"""

import asyncio
import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from meshkit import config

log = logging.getLogger(__name__)

TRUST_DOMAIN = "shopmesh.local"
ENVOY = "envoy"
# the identity of a person debugging a service on its own port (grpcurl)
OPERATOR = "operator"
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
# how often a MeshChannel looks for new files
RENEW_CHECK_SECONDS = 5.0
# calls on a replaced channel have this long to finish; a stream still open then is
# cancelled, and its follower opens it again on the new channel
HANDOVER_SECONDS = 30.0


def spiffe_id(name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/{name}"


def default_directory(data_dir: Path, name: str) -> Path:
    """Where `make up` keeps the identity called name."""
    return data_dir / "credentials" / "mesh" / name


@dataclass(frozen=True)
class Material:
    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class MeshTls:
    """The identity `name` of this process, kept in directory."""

    directory: Path
    name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str) -> "MeshTls":
        """MESH_TLS_DIR, or the identity's place in the data directory; ConfigError
        when it holds no usable identity."""
        directory = Path(config.get(env, "MESH_TLS_DIR", "") or default_directory(config.data_dir(env), name))
        tls = cls(directory, name)
        tls.material()
        return tls

    @property
    def id(self) -> str:
        return spiffe_id(self.name)

    def material(self) -> Material:
        """The three files, the certificate checked against the key; ConfigError when
        they are not a whole identity (read while a rotation swaps them, they may belong
        to two generations: then they are read again later)."""
        paths = [self.directory / file for file in (CA_FILE, CERT_FILE, KEY_FILE)]
        try:
            material = Material(*(path.read_bytes() for path in paths))
            # Python's own TLS checks what grpc would only find at a handshake (and needs
            # no library of its own in every service): the CA bundle parses, the key fits
            check = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            check.load_verify_locations(cadata=material.ca.decode())
            check.load_cert_chain(paths[1], paths[2])
            unchanged = Material(*(path.read_bytes() for path in paths)) == material
        except (OSError, ValueError, ssl.SSLError) as error:
            raise config.ConfigError(
                f"no usable mesh identity in {self.directory} ({error}); "
                "`python -m devmesh.mesh_identity` makes the development ones"
            ) from None
        if not unchanged:
            raise config.ConfigError(f"{self.directory}: its files changed while being read")
        return material

    def version(self) -> tuple:
        """Changes whenever one of the files is replaced."""
        stats = [os.stat(self.directory / file) for file in (CA_FILE, CERT_FILE, KEY_FILE)]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that require a client certificate of the mesh CA, and that take
        new files for each new connection once they have been replaced."""
        current = {"version": self.version(), "material": self.material()}

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # called by grpc on each new connection: a few stat() calls unless something changed
            try:
                version = self.version()
                if version == current["version"]:
                    return None
                material = self.material()
            except (OSError, config.ConfigError) as error:
                log.warning("mesh identity not reloaded; the previous one serves", extra={"reason": str(error)})
                return None
            current.update(version=version, material=material)
            log.info("mesh identity reloaded", extra={"identity": self.id})
            return _server_config(material)

        return grpc.dynamic_ssl_server_credentials(
            _server_config(current["material"]), fetch, require_client_authentication=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        material = self.material()
        return grpc.ssl_channel_credentials(material.ca, material.key, material.cert)


def _server_config(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(material.key, material.cert)], material.ca)


def server_name_option(peer: str) -> tuple[str, str]:
    """The channel option under which the peer's certificate (its DNS name) is checked."""
    return ("grpc.ssl_target_name_override", peer)


def channel(
    tls: MeshTls, address: str, options: Sequence[tuple[str, object]] = (), peer: str = ENVOY
) -> grpc.aio.Channel:
    """A grpc.aio channel to peer at address, presenting tls's certificate as it is now."""
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=[*options, server_name_option(peer)])


def peer_id(context: grpc.aio.ServicerContext) -> str:
    """The SPIFFE ID of the caller's certificate ("" without one)."""
    values = context.auth_context().get("peer_spiffe_id") or [b""]
    return values[0].decode(errors="replace")


class MeshChannel:
    """A grpc.aio channel to a peer of the mesh (Envoy's mesh listener) that presents this
    process's current certificate. Stubs take it like any channel. When the identity's
    files are replaced, watch() opens a new channel for the calls that follow and closes
    the old one after HANDOVER_SECONDS."""

    def __init__(self, tls: MeshTls, address: str, options: Sequence[tuple[str, object]] = (), peer: str = ENVOY):
        self._tls, self._address, self._options, self._peer = tls, address, options, peer
        self._version = tls.version()
        self._channel = self._open()
        self._callables: dict[tuple, object] = {}
        self._replaced: list[grpc.aio.Channel] = []
        self._closing: set[asyncio.Task] = set()

    def _open(self) -> grpc.aio.Channel:
        return channel(self._tls, self._address, self._options, self._peer)

    def _renewing(self, kind: str, method: str, kwargs: dict):
        """What a stub keeps for one method: each call goes to the channel of the moment
        (its multicallable made once per channel)."""
        key = (kind, method)

        def call(*args, **call_kwargs):
            found = self._callables.get(key)
            if found is None:
                found = self._callables[key] = getattr(self._channel, kind)(method, **kwargs)
            return found(*args, **call_kwargs)

        return call

    def unary_unary(self, method: str, **kwargs):
        return self._renewing("unary_unary", method, kwargs)

    def unary_stream(self, method: str, **kwargs):
        return self._renewing("unary_stream", method, kwargs)

    def stream_unary(self, method: str, **kwargs):
        return self._renewing("stream_unary", method, kwargs)

    def stream_stream(self, method: str, **kwargs):
        return self._renewing("stream_stream", method, kwargs)

    def renew(self) -> bool:
        """A new channel if the files changed (and are a whole identity); whether it did."""
        try:
            version = self._tls.version()
            if version == self._version:
                return False
            fresh = self._open()
        except (OSError, config.ConfigError) as error:
            log.warning("mesh identity not reloaded; the previous one calls", extra={"reason": str(error)})
            return False
        old, self._channel, self._version, self._callables = self._channel, fresh, version, {}
        closing = asyncio.get_running_loop().create_task(self._retire(old))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        log.info("mesh identity reloaded; new calls use it", extra={"identity": self._tls.id})
        return True

    async def _retire(self, old: grpc.aio.Channel) -> None:
        self._replaced.append(old)
        try:
            await old.close(HANDOVER_SECONDS)
        finally:
            self._replaced.remove(old)

    async def watch(self, every: float = RENEW_CHECK_SECONDS) -> None:
        """Runs renew() every few seconds (a background task of the server)."""
        while True:
            await asyncio.sleep(every)
            self.renew()

    async def close(self, grace: float | None = None) -> None:
        # a channel being replaced is closed now too, its handover cut short
        for channel in [*self._replaced, self._channel]:
            await channel.close(grace)
