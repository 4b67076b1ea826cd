"""Order rules, without network or database."""

import datetime as dt

import pytest

from meshkit.errors import FailedPrecondition, InvalidArgument
from meshkit.money import Money
from orders import domain
from orders.domain import ItemRequest, OrderLine, OrderStatus

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def order(status: OrderStatus) -> domain.Order:
    line = OrderLine("W-1", 2, Money.of("EUR", 5))
    return domain.Order("o-1", "a@example.com", (line,), status, Money.of("EUR", 10), NOW, NOW)


@pytest.mark.parametrize(
    "start, target",
    [
        (OrderStatus.PENDING, OrderStatus.CONFIRMED),
        (OrderStatus.PENDING, OrderStatus.CANCELLED),
        (OrderStatus.CONFIRMED, OrderStatus.SHIPPED),
        (OrderStatus.CONFIRMED, OrderStatus.CANCELLED),
    ],
)
def test_allowed_moves(start, target):
    later = NOW + dt.timedelta(seconds=1)
    moved = order(start).moved_to(target, later)
    assert moved.status is target
    assert moved.update_time == later
    assert moved.create_time == NOW


@pytest.mark.parametrize(
    "start, target",
    [
        (OrderStatus.PENDING, OrderStatus.SHIPPED),
        (OrderStatus.PENDING, OrderStatus.PENDING),
        (OrderStatus.CONFIRMED, OrderStatus.CONFIRMED),
        (OrderStatus.CONFIRMED, OrderStatus.PENDING),
        (OrderStatus.SHIPPED, OrderStatus.CANCELLED),
        (OrderStatus.SHIPPED, OrderStatus.CONFIRMED),
        (OrderStatus.CANCELLED, OrderStatus.CONFIRMED),
        (OrderStatus.CANCELLED, OrderStatus.SHIPPED),
        (OrderStatus.CANCELLED, OrderStatus.CANCELLED),
    ],
)
def test_illegal_moves_are_failed_preconditions(start, target):
    with pytest.raises(FailedPrecondition) as raised:
        order(start).moved_to(target, NOW)
    assert raised.value.reason == "ILLEGAL_STATUS_TRANSITION"
    assert raised.value.violations[0].subject == "orders/o-1"


def test_terminal_statuses():
    assert {s for s in OrderStatus if s.terminal} == {OrderStatus.SHIPPED, OrderStatus.CANCELLED}


@pytest.mark.parametrize(
    "email",
    ["a@example.com", "first.last+tag@sub.example.co.uk", "o'brien@example.ie", "x@xn--bcher-kva.example"],
)
def test_valid_emails(email):
    assert domain.email_problem(email) is None


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "a@b",
        "@example.com",
        "a@@example.com",
        "a b@example.com",
        "Alice <a@example.com>",
        "a@example.com\r\nBcc: victim@example.com",
        "a@example.com\n",
        "a@example.com\r",
        "a@-example.com",
        "a..b@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_invalid_emails(email):
    assert domain.email_problem(email) is not None


def test_new_order_reports_every_bad_field_at_once():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_new_order(
            "not an email",
            [ItemRequest("W-1", 0), ItemRequest("", 1), ItemRequest("W-1", -3)],
            "r" * 200,
        )
    fields = [v.field for v in raised.value.violations]
    assert fields == [
        "customer_email",
        "items[0].quantity",
        "items[1].product_id",
        "items[2].product_id",
        "items[2].quantity",
        "request_id",
    ]


def test_new_order_items_follow_the_shared_rules_with_orders_product_id_rule():
    with pytest.raises(InvalidArgument) as raised:
        domain.validate_new_order(
            "a@example.com",
            [ItemRequest("bad id!", 1), ItemRequest("x" * 65, 10**6 + 1), ItemRequest("bad id!", 1)],
            "",
        )
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("items[1].product_id", "must be 1 to 64 characters"),
        ("items[1].quantity", "must be at most 1000000"),
        ("items[2].product_id", "bad id! is listed twice"),
    ]


def test_new_order_needs_items():
    with pytest.raises(InvalidArgument, match="items: must list at least one item"):
        domain.validate_new_order("a@example.com", [], "")


def test_request_id_gives_a_stable_order_id():
    first = domain.validate_new_order("a@example.com", [ItemRequest("W-1", 1)], "req-1")
    again = domain.validate_new_order("a@example.com", [ItemRequest("W-1", 1)], "req-1")
    assert first.new_order_id() == again.new_order_id()
    assert first.fingerprint() == again.fingerprint()
    other = domain.validate_new_order("a@example.com", [ItemRequest("W-1", 2)], "req-1")
    assert other.fingerprint() != first.fingerprint()


def test_without_request_id_every_order_id_is_new():
    new = domain.validate_new_order("a@example.com", [ItemRequest("W-1", 1)], "")
    assert new.new_order_id() != new.new_order_id()


def test_pricing_sums_exactly_in_nanos():
    new = domain.validate_new_order("a@example.com", [ItemRequest("A", 3), ItemRequest("B", 1)], "")
    lines = [OrderLine("A", 3, Money.of("EUR", 0, 100_000_000)), OrderLine("B", 1, Money.of("EUR", 0, 200_000_000))]
    priced = domain.price_order("o-1", new, lines, NOW)
    assert priced.total == Money.of("EUR", 0, 500_000_000)
    assert priced.status is OrderStatus.PENDING


def test_pricing_refuses_mixed_currencies():
    new = domain.validate_new_order("a@example.com", [ItemRequest("A", 1), ItemRequest("B", 1)], "")
    lines = [OrderLine("A", 1, Money.of("EUR", 1)), OrderLine("B", 1, Money.of("USD", 1))]
    with pytest.raises(FailedPrecondition, match="one currency"):
        domain.price_order("o-1", new, lines, NOW)
