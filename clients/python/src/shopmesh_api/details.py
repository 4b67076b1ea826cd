"""What a refusal says beyond its code: ShopMesh sends a google.rpc.Status with details
(BadRequest field violations, PreconditionFailure, ErrorInfo, ResourceInfo) in the
grpc-status-details-bin trailer, as Google's APIs do."""

from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

DETAILS_TRAILER = "grpc-status-details-bin"
Detail = TypeVar("Detail", bound=Message)


def status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The rich status of a failed call, or None when it carries none."""
    trailers = error.trailing_metadata() if isinstance(error, grpc.Call) else None
    for key, value in trailers or ():
        if key == DETAILS_TRAILER and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def details_of(error: grpc.RpcError, kind: type[Detail]) -> list[Detail]:
    """The details of one kind, e.g. details_of(error, error_details_pb2.PreconditionFailure)."""
    status = status_of(error)
    found = []
    for packed in status.details if status is not None else ():
        detail = kind()
        if packed.Unpack(detail):
            found.append(detail)
    return found
