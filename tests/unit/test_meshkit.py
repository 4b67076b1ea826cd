"""Shared plumbing: money, page tokens, error mapping, configuration."""

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from google.type import money_pb2

from meshkit import config, errors, pagination
from meshkit.money import Money
from meshkit.protoconv import money_from_proto, money_proto_problem, money_to_proto
from meshkit.status import to_status


@pytest.mark.parametrize("units, nanos", [(0, 0), (5, 990_000_000), (-3, -250_000_000), (2**40, 1)])
def test_money_round_trips_through_google_type_money(units, nanos):
    message = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)
    assert money_to_proto(money_from_proto(message)) == message


def test_money_arithmetic_is_exact():
    assert Money.of("EUR", 0, 100_000_000) * 3 == Money.of("EUR", 0, 300_000_000)
    assert str(Money.of("EUR", 12, 500_000_000)) == "12.50 EUR"
    with pytest.raises(ValueError):
        Money.of("EUR", 1) + Money.of("USD", 1)


@pytest.mark.parametrize(
    "units, nanos", [(1, -1), (-1, 1), (0, 1_000_000_000), (0, -1_000_000_000)]
)
def test_malformed_money_is_named(units, nanos):
    assert money_proto_problem(money_pb2.Money(currency_code="EUR", units=units, nanos=nanos))


def test_page_tokens_round_trip_and_are_bound_to_filters():
    token = pagination.encode(["2026-01-01T00:00:00+00:00", "o-1"], {"customer_email": "a@example.com"})
    assert pagination.decode(token, {"customer_email": "a@example.com"}, list) == [
        "2026-01-01T00:00:00+00:00",
        "o-1",
    ]
    with pytest.raises(errors.InvalidArgument, match="other filters"):
        pagination.decode(token, {"customer_email": "b@example.com"}, list)
    for garbage in ["x", "!!!", "eyJrIjogMX0"]:
        with pytest.raises(errors.InvalidArgument, match="page_token"):
            pagination.decode(garbage, {}, str)
    assert pagination.decode("", {}, str) is None


def test_page_size_defaults_and_caps():
    assert pagination.page_size(0) == pagination.DEFAULT_PAGE_SIZE
    assert pagination.page_size(10**6) == pagination.MAX_PAGE_SIZE
    with pytest.raises(errors.InvalidArgument):
        pagination.page_size(-1)


def test_domain_errors_map_to_codes_with_details():
    bad = to_status(errors.InvalidArgument([errors.FieldViolation("items", "must not be empty")]), "x")
    assert bad.code == code_pb2.INVALID_ARGUMENT
    request = error_details_pb2.BadRequest()
    assert any(d.Unpack(request) for d in bad.details)
    assert request.field_violations[0].field == "items"

    short = to_status(
        errors.FailedPrecondition("short", [errors.PreconditionViolation("STOCK", "products/A", "none")]), "x"
    )
    assert short.code == code_pb2.FAILED_PRECONDITION
    failure = error_details_pb2.PreconditionFailure()
    assert any(d.Unpack(failure) for d in short.details)
    assert failure.violations[0].subject == "products/A"

    assert to_status(errors.NotFound("product", "A"), "x").code == code_pb2.NOT_FOUND
    assert to_status(errors.AlreadyExists("product", "A"), "x").code == code_pb2.ALREADY_EXISTS
    assert to_status(errors.Unavailable("down"), "x").code == code_pb2.UNAVAILABLE

    over = errors.ResourceExhausted("too many", [errors.QuotaViolation("clientip:1.2.3.4", "at most 2")])
    full = to_status(over, "x")
    assert full.code == code_pb2.RESOURCE_EXHAUSTED
    quota = error_details_pb2.QuotaFailure()
    assert any(d.Unpack(quota) for d in full.details)
    assert (quota.violations[0].subject, quota.violations[0].description) == ("clientip:1.2.3.4", "at most 2")
    assert grpc.StatusCode.NOT_FOUND.value[0] == code_pb2.NOT_FOUND


def test_bad_configuration_fails_with_one_line():
    with pytest.raises(config.ConfigError, match="ORDERS_LISTEN"):
        config.address({"ORDERS_LISTEN": "nonsense"}, "ORDERS_LISTEN", "127.0.0.1:1")
    with pytest.raises(config.ConfigError, match="port"):
        config.address({"X": "h:99999"}, "X", "127.0.0.1:1")
    with pytest.raises(config.ConfigError, match="postgresql"):
        config.database_url({"DB": "mysql://x"}, "DB", "x.db")
    assert config.address({}, "X", "127.0.0.1:1") == "127.0.0.1:1"



def test_a_request_with_thousands_of_bad_fields_gets_a_bounded_error():
    v = errors.Validator()
    for i in range(10_000):
        v.add(f"items[{i}].product_id", "WIDGET-1 is listed twice")
    with pytest.raises(errors.InvalidArgument) as raised:
        v.raise_if_any()
    assert len(raised.value.violations) == errors.MAX_VIOLATIONS + 1
    assert raised.value.violations[-1].description == f"and {10_000 - errors.MAX_VIOLATIONS} more"
    assert len(to_status(raised.value, "test").SerializeToString()) < 4096
