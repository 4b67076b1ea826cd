"""How many WatchOrder streams may be open at once, per client and in all.

An open watch holds a request slot (Envoy's, and a stream here) for up to an hour: without
a cap, one client, or a popular page with an EventSource per visitor, could hold every slot
and starve every other call. Plain Python: one OpenWatches per process, wired in orders.main.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from meshkit.caller import Caller
from meshkit.errors import QuotaViolation, ResourceExhausted

# Set by Envoy at the edge (use_remote_address): the client's address, as its trusted
# proxies say; whatever a client writes there is dropped, as are the x-shopmesh-* headers.
EXTERNAL_ADDRESS_HEADER = "x-envoy-external-address"
# Envoy appends the address it took the connection from: the last entry is its own word.
FORWARDED_FOR_HEADER = "x-forwarded-for"


@dataclass(frozen=True)
class WatchLimits:
    per_client: int = 16
    total: int = 10_000


def client_key(caller: Caller, metadata: Iterable[tuple[str, str | bytes]], peer: str) -> str | None:
    """Whose quota a watch counts against: the verified subject, else the client address
    Envoy passed on, else the connection's peer. None for a caller the per-client cap does
    not apply to: operators (a shop's staff follow many orders) and other services."""
    if caller.sees_everything:
        return None
    if caller.subject:
        return f"subject:{caller.subject}"
    headers = {key: value for key, value in metadata if isinstance(value, str)}
    address = headers.get(EXTERNAL_ADDRESS_HEADER, "").strip()
    if not address and FORWARDED_FOR_HEADER in headers:
        address = headers[FORWARDED_FOR_HEADER].rsplit(",", 1)[-1].strip()
    return f"clientip:{address or _peer_host(peer)}"


def _peer_host(peer: str) -> str:
    """The host of a gRPC peer ("ipv4:10.0.0.1:5000", "ipv6:[::1]:5000"): a client that
    opens more connections gets no more watches."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    return rest.rpartition(":")[0].strip("[]")


class OpenWatches:
    """Counts open watches; a slot over a limit is ResourceExhausted at once."""

    def __init__(self, limits: WatchLimits) -> None:
        self._limits = limits
        self._total = 0
        # only clients holding a watch have an entry, so this stays as small as what is open
        self._by_client: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._total

    @contextmanager
    def slot(self, client: str | None) -> Iterator[None]:
        """Holds one slot for client (None: only the total counts) while the block runs."""
        limits = self._limits
        if client is not None and self._by_client[client] >= limits.per_client:
            raise ResourceExhausted(
                f"too many open order watches for this caller (limit {limits.per_client}); "
                "close one before watching another",
                [QuotaViolation(client, f"at most {limits.per_client} open order watches per caller")],
                reason="TOO_MANY_WATCHES_PER_CALLER",
            )
        if self._total >= limits.total:
            raise ResourceExhausted(
                f"the Order service has too many open order watches (limit {limits.total}); try again later",
                [QuotaViolation("service:orders", f"at most {limits.total} open order watches per process")],
                reason="TOO_MANY_WATCHES",
            )
        self._total += 1
        if client is not None:
            self._by_client[client] += 1
        try:
            yield
        finally:
            self._total -= 1
            if client is not None:
                self._by_client[client] -= 1
                if not self._by_client[client]:
                    del self._by_client[client]
