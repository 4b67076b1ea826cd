"""Who a watch counts against, and the caps on open watches; without network or database."""

import pytest

from meshkit.caller import Caller
from meshkit.errors import ResourceExhausted
from orders import domain
from orders.feed import LAGGED, ORDER_QUEUE_LIMIT, ChangeFeed
from orders.watches import OpenWatches, WatchLimits, client_key

EDGE_CUSTOMER = Caller(via_edge=True, email="ann@example.com", roles=frozenset({"customer"}))
PEER = "ipv4:10.0.0.9:51234"


@pytest.mark.parametrize(
    "caller, metadata, peer, key",
    [
        (Caller(True, "sub-1", "ann@example.com", frozenset({"customer"})), [], PEER, "subject:sub-1"),
        (EDGE_CUSTOMER, [("x-envoy-external-address", "203.0.113.7")], PEER, "clientip:203.0.113.7"),
        # the last entry is the one Envoy appended; a client wrote the others
        (EDGE_CUSTOMER, [("x-forwarded-for", "1.1.1.1, 198.51.100.2")], PEER, "clientip:198.51.100.2"),
        (EDGE_CUSTOMER, [], PEER, "clientip:10.0.0.9"),  # any port: more connections give no more watches
        (EDGE_CUSTOMER, [], "ipv6:[::1]:40000", "clientip:::1"),
        # a shop's staff, and other services, count only toward the process's cap
        (Caller(True, "ops", "ops@example.com", frozenset({"operator"})), [], PEER, None),
        (Caller(), [], PEER, None),
    ],
)
def test_a_watch_counts_against_the_verified_subject_else_the_client_address(caller, metadata, peer, key):
    assert client_key(caller, metadata, peer) == key


def test_a_caller_over_its_cap_is_refused_and_a_closed_watch_frees_its_slot():
    watches = OpenWatches(WatchLimits(per_client=2, total=10))
    with watches.slot("subject:a"), watches.slot("subject:a"):
        with pytest.raises(ResourceExhausted, match=r"this caller \(limit 2\)") as raised:
            with watches.slot("subject:a"):
                pass
        assert raised.value.violations[0].subject == "subject:a"
        with watches.slot("subject:b"), watches.slot(None):
            assert watches.open == 4
    with watches.slot("subject:a"):
        assert watches.open == 1
    assert watches.open == 0


def test_the_process_cap_counts_every_watch():
    watches = OpenWatches(WatchLimits(per_client=5, total=2))
    with watches.slot(None), watches.slot("subject:a"):
        with pytest.raises(ResourceExhausted, match=r"too many open order watches \(limit 2\)"):
            with watches.slot("subject:b"):
                pass
    with watches.slot("subject:b"):
        assert watches.open == 1


class NoEvents:
    """An order database without events (the feed is never run here)."""

    async def last_sequence(self) -> int:
        return 0

    async def events_after(self, sequence: int, limit: int) -> list[domain.OrderEvent]:
        return []


async def test_a_watcher_of_one_order_holds_a_small_queue_and_is_told_to_re_read_past_it():
    feed = ChangeFeed(NoEvents())
    with feed.subscribe("o-1") as watcher, feed.subscribe() as follower:
        for sequence in range(ORDER_QUEUE_LIMIT + 5):
            watcher.deliver(sequence)
            follower.deliver(sequence)
        feed.close()  # the feed closing arrives all the same
        assert [await watcher.next() for _ in range(ORDER_QUEUE_LIMIT + 2)] == [
            *range(ORDER_QUEUE_LIMIT),
            LAGGED,
            None,
        ]
        # a follower of every order (StreamOrderEvents) keeps its larger queue
        assert [await follower.next() for _ in range(ORDER_QUEUE_LIMIT + 6)] == [*range(ORDER_QUEUE_LIMIT + 5), None]
