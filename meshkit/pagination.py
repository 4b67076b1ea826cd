"""Opaque page tokens (AIP-158): the last key of a page plus a fingerprint of the
request's filters, so a token reused with other filters is refused."""

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from meshkit.errors import FieldViolation, InvalidArgument

T = TypeVar("T")

# A list request's filters by field name (a token is good only for the same ones)
Filters = Mapping[str, str]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """The page size to read for a request's page_size: DEFAULT_PAGE_SIZE for 0, at most MAX_PAGE_SIZE."""
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: Filters) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def encode(last_key: object, filters: Filters) -> str:
    """The token of the page after the one whose last key (any value JSON can hold) is last_key."""
    raw = json.dumps({"k": last_key, "f": _fingerprint(filters)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: Filters, parse: Callable[[Any], T]) -> T | None:
    """parse(last key) of token (the key as JSON read it), or None for an empty token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        fingerprint = data["f"]
        key = parse(data["k"])
    except (ValueError, KeyError, TypeError, IndexError):
        raise InvalidArgument([FieldViolation("page_token", "is not a token this API issued")]) from None
    if fingerprint != _fingerprint(filters):
        raise InvalidArgument(
            [FieldViolation("page_token", "was issued for other filters; send the same filters as the first page")]
        )
    return key


def cut(found: list[T], size: int, filters: Filters, last_key: Callable[[T], object]) -> tuple[list[T], str]:
    """The page and its next_page_token, from up to size + 1 items read (one more
    than a page tells whether another page follows)."""
    page = found[:size]
    return page, encode(last_key(page[-1]), filters) if len(found) > size else ""
