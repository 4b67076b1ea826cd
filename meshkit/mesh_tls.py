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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypeVar

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

# the identity's files as MeshTls.version() sees them: (inode, mtime in ns, size) each
FilesVersion: TypeAlias = tuple[tuple[int, int, int], ...]
# what a call's metadata may be (grpc.aio's own alias is private to its type stubs)
CallMetadata: TypeAlias = grpc.aio.Metadata | Sequence[tuple[str, str | bytes]]
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Made = TypeVar("_Made")


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

    def version(self) -> FilesVersion:
        """Changes whenever one of the files is replaced."""
        stats = [os.stat(self.directory / file) for file in (CA_FILE, CERT_FILE, KEY_FILE)]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that require a client certificate of the mesh CA, and that take
        new files for each new connection once they have been replaced."""
        loaded = self.version()
        initial = _server_config(self.material())

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # called by grpc on each new connection: a few stat() calls unless something changed
            nonlocal loaded
            try:
                version = self.version()
                if version == loaded:
                    return None
                material = self.material()
            except (OSError, config.ConfigError) as error:
                log.warning("mesh identity not reloaded; the previous one serves", extra={"reason": str(error)})
                return None
            loaded = version
            log.info("mesh identity reloaded", extra={"identity": self.id})
            return _server_config(material)

        # typeshed's grpcio stub wants the fetcher to return a configuration; grpc's own
        # documentation has it return None for "no change", as fetch() does
        return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=True)  # type: ignore[arg-type]

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


def peer_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The SPIFFE ID of the caller's certificate ("" without one)."""
    values = context.auth_context().get("peer_spiffe_id", ())
    return next(iter(values), b"").decode(errors="replace")


class _Renewing(Generic[_Made]):
    """What a stub of a MeshChannel keeps for one method: the multicallable of the channel
    of the moment, made once per channel (again after each renewal)."""

    def __init__(self, mesh: "MeshChannel", make: Callable[[grpc.aio.Channel], _Made]) -> None:
        self._mesh, self._make = mesh, make
        self._made: tuple[grpc.aio.Channel, _Made] | None = None

    def _current(self) -> _Made:
        channel = self._mesh.current
        if self._made is None or self._made[0] is not channel:
            self._made = (channel, self._make(channel))
        return self._made[1]


class _UnaryUnary(
    _Renewing[grpc.aio.UnaryUnaryMultiCallable[_Request, _Response]],
    grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
):
    def __call__(
        self,
        request: _Request,
        *,
        timeout: float | None = None,
        metadata: CallMetadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryUnaryCall[_Request, _Response]:
        return self._current()(
            request,
            timeout=timeout,
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )


class _UnaryStream(
    _Renewing[grpc.aio.UnaryStreamMultiCallable[_Request, _Response]],
    grpc.aio.UnaryStreamMultiCallable[_Request, _Response],
):
    def __call__(
        self,
        request: _Request,
        *,
        timeout: float | None = None,
        metadata: CallMetadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryStreamCall[_Request, _Response]:
        return self._current()(
            request,
            timeout=timeout,
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )


class _StreamUnary(
    _Renewing[grpc.aio.StreamUnaryMultiCallable[_Request, _Response]],
    grpc.aio.StreamUnaryMultiCallable[_Request, _Response],
):
    def __call__(
        self,
        request_iterator: AsyncIterator[_Request] | Iterator[_Request] | None = None,
        timeout: float | None = None,
        metadata: CallMetadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.StreamUnaryCall[_Request, _Response]:
        return self._current()(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)


class _StreamStream(
    _Renewing[grpc.aio.StreamStreamMultiCallable[_Request, _Response]],
    grpc.aio.StreamStreamMultiCallable[_Request, _Response],
):
    def __call__(
        self,
        request_iterator: AsyncIterator[_Request] | Iterator[_Request] | None = None,
        timeout: float | None = None,
        metadata: CallMetadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.StreamStreamCall[_Request, _Response]:
        return self._current()(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)


class MeshChannel(grpc.aio.Channel):
    """A grpc.aio channel to a peer of the mesh (Envoy's mesh listener) that presents this
    process's current certificate; a grpc.aio.Channel that stubs take like any. When the identity's
    files are replaced, watch() opens a new channel for the calls that follow and closes
    the old one after HANDOVER_SECONDS."""

    def __init__(
        self, tls: MeshTls, address: str, options: Sequence[tuple[str, object]] = (), peer: str = ENVOY
    ) -> None:
        self._tls, self._address, self._options, self._peer = tls, address, options, peer
        self._version = tls.version()
        self._channel = self._open()
        self._replaced: list[grpc.aio.Channel] = []
        self._closing: set[asyncio.Task[None]] = set()

    def _open(self) -> grpc.aio.Channel:
        return channel(self._tls, self._address, self._options, self._peer)

    @property
    def current(self) -> grpc.aio.Channel:
        """The channel that new calls go to."""
        return self._channel

    # The multicallables pass on _registered_method, which grpc's generated stubs give (grpc
    # then registers the method with the channel once) and typeshed's grpcio stubs lack.

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[_Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], _Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[_Request, _Response]:
        return _UnaryUnary(
            self,
            lambda channel: channel.unary_unary(  # type: ignore[call-arg]  # stub lacks _registered_method
                method, request_serializer, response_deserializer, _registered_method=_registered_method
            ),
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[_Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], _Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[_Request, _Response]:
        return _UnaryStream(
            self,
            lambda channel: channel.unary_stream(  # type: ignore[call-arg]  # stub lacks _registered_method
                method, request_serializer, response_deserializer, _registered_method=_registered_method
            ),
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[_Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], _Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[_Request, _Response]:
        return _StreamUnary(
            self,
            lambda channel: channel.stream_unary(  # type: ignore[call-arg]  # stub lacks _registered_method
                method, request_serializer, response_deserializer, _registered_method=_registered_method
            ),
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[_Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], _Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[_Request, _Response]:
        return _StreamStream(
            self,
            lambda channel: channel.stream_stream(  # type: ignore[call-arg]  # stub lacks _registered_method
                method, request_serializer, response_deserializer, _registered_method=_registered_method
            ),
        )

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        await self.close(None)

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
        old, self._channel, self._version = self._channel, fresh, version
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
