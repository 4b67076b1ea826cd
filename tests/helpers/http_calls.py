"""Plain HTTP/1.1 calls with JSON bodies, as a REST client of Envoy's public listener makes them."""

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    """An HTTP answer: its status, its headers (names in lower case) and its body, parsed
    as JSON when it is JSON, else as text (None when empty)."""

    status: int
    headers: dict[str, str]
    body: Any


def http_call(
    url: str,
    method: str = "GET",
    body: object = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
) -> Reply:
    """One plain HTTP/1.1 request with a JSON body, and a bearer token when one is given."""
    data = None if body is None else json.dumps(body).encode()
    auth = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **auth, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            status, head, raw = reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    parsed: Any
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Reply(status, {k.lower(): v for k, v in head.items()}, parsed)
