"""Thin helpers for ShopMesh's generated stubs (the `shopmesh` package): a channel that
carries a bearer token, and the details of a refusal. The stubs stay the API."""

from shopmesh_api.channels import aio_channel, channel, credentials
from shopmesh_api.details import details_of, status_of

__all__ = ["aio_channel", "channel", "credentials", "details_of", "status_of"]
