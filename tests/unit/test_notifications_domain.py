"""What each order event's email says, and the retry back-off, without network."""

import dataclasses

import pytest

from meshkit.money import Money
from notifications import domain

ORDER_ID = "7e90ee67-9255-41b3-8c64-0787f4faf505"


def event(status: str, created: bool = False, sequence: int = 7) -> domain.OrderEvent:
    return domain.OrderEvent(
        sequence=sequence,
        order_id=ORDER_ID,
        customer_email="ann@example.com",
        status=status,
        created=created,
        lines=(
            domain.OrderLine("WIDGET-1", 2, Money.of("EUR", 9, 990_000_000)),
            domain.OrderLine("GIZMO-3", 1, Money.of("EUR", 4)),
        ),
        total=Money.of("EUR", 23, 980_000_000),
    )


@pytest.mark.parametrize(
    "status, created, subject",
    [
        ("PENDING", True, "Order 7e90ee67 received"),
        ("CONFIRMED", False, "Order 7e90ee67 confirmed"),
        ("SHIPPED", False, "Order 7e90ee67 shipped"),
        ("CANCELLED", False, "Order 7e90ee67 cancelled"),
    ],
)
def test_each_event_gets_its_subject(status, created, subject):
    assert domain.render(event(status, created)).subject == subject


def test_body_lists_items_and_total_in_the_order_currency():
    body = domain.render(event("PENDING", created=True)).body
    assert "2 x WIDGET-1 at 9.99 EUR = 19.98 EUR" in body
    assert "1 x GIZMO-3 at 4.00 EUR = 4.00 EUR" in body
    assert "Total: 23.98 EUR" in body
    assert ORDER_ID in body


def test_message_id_is_stable_per_event_and_unique_across_events():
    first = domain.render(event("CONFIRMED")).message_id
    assert first == domain.render(event("CONFIRMED")).message_id
    assert first != domain.render(event("CONFIRMED", sequence=8)).message_id
    assert first.startswith("<") and first.endswith(">") and "@" in first
    assert len(f"Message-ID: {first}") <= 78  # one header line, never folded


def test_retry_back_off_doubles_up_to_the_cap_then_gives_up():
    policy = domain.RetryPolicy(max_attempts=5, first_delay=2, max_delay=10)
    assert [policy.delay_after(n) for n in range(1, 6)] == [2, 4, 8, 10, None]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"status": "PENDING"}, "moving to PENDING"),  # a change to PENDING gets no email
        ({"status": "REFUNDED"}, "moving to REFUNDED"),  # a status newer than this service
        ({"customer_email": ""}, "address has 0 characters"),
        ({"customer_email": "a" * 250 + "@x.io"}, "address has 255 characters"),
        ({"order_id": "x" * 37}, "order id has 37 characters"),
    ],
)
def test_an_event_no_email_can_be_written_for_says_why(change, reason):
    with pytest.raises(domain.CannotRender, match=reason):
        domain.render(dataclasses.replace(event("CONFIRMED"), **change))


def test_what_is_kept_of_an_unsendable_event_carries_its_message_id():
    kept = domain.unsendable(ORDER_ID, 7, "ann@example.com")
    assert kept.message_id == domain.render(event("CONFIRMED")).message_id
    assert (kept.recipient, kept.subject, kept.body) == ("ann@example.com", "", "")
