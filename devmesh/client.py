"""Channels to Envoy's public listener that carry a bearer token on every call, as
any client of ShopMesh needs: TLS with the CA when one is given, otherwise plaintext,
which gRPC allows with a token only to a loopback address (local credentials)."""

from pathlib import Path

import grpc


def credentials(token: str, ca: Path | None = None) -> grpc.ChannelCredentials:
    transport = (
        grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        if ca is not None
        else grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    )
    return grpc.composite_channel_credentials(transport, grpc.access_token_call_credentials(token))


def channel(address: str, token: str, ca: Path | None = None, options=None) -> grpc.Channel:
    return grpc.secure_channel(address, credentials(token, ca), options=options)


def aio_channel(address: str, token: str, ca: Path | None = None, options=None) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, credentials(token, ca), options=options)
