"""Channels to ShopMesh's public listener that carry a bearer token on every call: TLS
with the given CA (or the system's) for a remote address, and, without one, plaintext,
which gRPC allows with a token only to a loopback address (local credentials)."""

from pathlib import Path

import grpc


def credentials(token: str, ca: Path | str | None = None, *, tls: bool | None = None) -> grpc.ChannelCredentials:
    """The token on every call, over TLS (trusting ca, or the system's CAs when tls is
    set without one) or over loopback plaintext (neither)."""
    if ca is not None or tls:
        transport = grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes() if ca is not None else None)
    else:
        transport = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    return grpc.composite_channel_credentials(transport, grpc.access_token_call_credentials(token))


def channel(
    address: str, token: str, ca: Path | str | None = None, options=None, *, tls: bool | None = None
) -> grpc.Channel:
    return grpc.secure_channel(address, credentials(token, ca, tls=tls), options=options)


def aio_channel(
    address: str, token: str, ca: Path | str | None = None, options=None, *, tls: bool | None = None
) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, credentials(token, ca, tls=tls), options=options)
