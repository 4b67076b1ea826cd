"""Channels to Envoy's public listener with a bearer token, for the tests and tools: the
client package's own (clients/python, shopmesh_api.channels)."""

from shopmesh_api.channels import aio_channel, channel, credentials

__all__ = ["aio_channel", "channel", "credentials"]
