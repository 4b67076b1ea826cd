"""Shared plumbing: money, page tokens, error mapping (ours and our peers'), configuration."""

import contextvars

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from google.type import money_pb2
from sqlalchemy import create_engine, literal, select

from meshkit import config, errors, pagination, request_context
from meshkit.database import MoneyColumns
from meshkit.money import Money
from meshkit.protoconv import money_from_proto, money_proto_problem, money_to_proto
from meshkit.status import PEER_CODE_TO_OURS, code_for_caller, from_rpc_error, to_status


@pytest.mark.parametrize("units, nanos", [(0, 0), (5, 990_000_000), (-3, -250_000_000), (2**40, 1)])
def test_money_round_trips_through_google_type_money(units, nanos):
    message = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)
    assert money_to_proto(money_from_proto(message)) == message


def test_money_arithmetic_is_exact():
    assert Money.of("EUR", 0, 100_000_000) * 3 == Money.of("EUR", 0, 300_000_000)
    assert str(Money.of("EUR", 12, 500_000_000)) == "12.50 EUR"
    with pytest.raises(ValueError):
        Money.of("EUR", 1) + Money.of("USD", 1)


@pytest.mark.parametrize("units, nanos", [(0, 0), (9, 990_000_000), (-3, -250_000_000)])
def test_money_round_trips_through_a_tables_columns(units, nanos):
    price = MoneyColumns("price")
    money = Money.of("EUR", units, nanos)
    assert price.values(money) == {"currency": "EUR", "price_units": units, "price_nanos": nanos}
    with create_engine("sqlite://").connect() as connection:
        row = connection.execute(select(*(literal(v).label(k) for k, v in price.values(money).items()))).one()
    assert price.money(row) == money


SIGNS = "units and nanos must have the same sign"
NANOS = "nanos must be between -999999999 and 999999999"


@pytest.mark.parametrize(
    "units, nanos, problem",
    [(1, -1, SIGNS), (-1, 1, SIGNS), (0, 1_000_000_000, NANOS), (0, -1_000_000_000, NANOS)],
)
def test_malformed_money_is_named(units, nanos, problem):
    assert money_proto_problem(money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)) == problem


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


def test_a_database_url_may_come_from_a_file_and_never_from_two_places(tmp_path):
    url = "postgresql+psycopg://shopmesh:secret@postgres:5432/orders"
    (tmp_path / "url").write_text(url + "\n")
    assert config.database_url({"DB_FILE": str(tmp_path / "url")}, "DB", "x.db") == url
    with pytest.raises(config.ConfigError, match="not both"):
        config.database_url({"DB": url, "DB_FILE": str(tmp_path / "url")}, "DB", "x.db")
    with pytest.raises(config.ConfigError, match="cannot be read") as unreadable:
        config.database_url({"DB_FILE": str(tmp_path / "missing")}, "DB", "x.db")
    assert "secret" not in str(unreadable.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(config.ConfigError, match="empty"):
        config.database_url({"DB_FILE": str(tmp_path / "empty")}, "DB", "x.db")
    (tmp_path / "mysql").write_text("mysql://x")
    with pytest.raises(config.ConfigError, match="postgresql"):
        config.database_url({"DB_FILE": str(tmp_path / "mysql")}, "DB", "x.db")


def test_a_request_with_thousands_of_bad_fields_gets_a_bounded_error():
    v = errors.Validator()
    for i in range(10_000):
        v.add(f"items[{i}].product_id", "WIDGET-1 is listed twice")
    with pytest.raises(errors.InvalidArgument) as raised:
        v.raise_if_any()
    assert len(raised.value.violations) == errors.MAX_VIOLATIONS + 1
    assert raised.value.violations[-1].description == f"and {10_000 - errors.MAX_VIOLATIONS} more"
    assert len(to_status(raised.value, "test").SerializeToString()) < 4096


C = grpc.StatusCode
ENVOY_CONNECT_FAILURE = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
    "transport failure reason: delayed connect error: 111"
)


RID = "request id rid-7"


def peer_error(code: grpc.StatusCode, text: str, *details) -> grpc.aio.AioRpcError:
    """What a failed call to a peer raises: a code, a text, and rich details in the trailers."""
    trailers = grpc.aio.Metadata()
    if details:
        status = status_pb2.Status(code=code.value[0], message=text)
        for detail in details:
            status.details.add().Pack(detail)
        trailers.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, text)


@pytest.mark.parametrize(
    "peer_code, ours",
    [
        # the peer's verdict on what our caller asked for goes on
        *((code, code) for code in (C.NOT_FOUND, C.ALREADY_EXISTS, C.FAILED_PRECONDITION)),
        # UNAVAILABLE only where trying again may help
        *((code, C.UNAVAILABLE) for code in (C.UNAVAILABLE, C.RESOURCE_EXHAUSTED, C.ABORTED, C.CANCELLED)),
        (C.DEADLINE_EXCEEDED, C.DEADLINE_EXCEEDED),
        # our own request was wrong, the peer failed, or the mesh refused us: the same again
        *((code, C.INTERNAL) for code in (C.INVALID_ARGUMENT, C.OUT_OF_RANGE, C.INTERNAL, C.UNKNOWN, C.DATA_LOSS)),
        *((code, C.INTERNAL) for code in (C.UNIMPLEMENTED, C.UNAUTHENTICATED, C.PERMISSION_DENIED)),
    ],
)
def test_what_a_peers_code_becomes_for_our_caller(peer_code, ours):
    assert code_for_caller(peer_code) == ours
    assert code_for_caller(peer_code, blames_callers_input=True) == (
        C.INVALID_ARGUMENT if peer_code in (C.INVALID_ARGUMENT, C.OUT_OF_RANGE) else ours
    )


def test_every_failure_code_is_in_the_table():
    assert set(PEER_CODE_TO_OURS) == set(C) - {C.OK}


@pytest.mark.parametrize(
    "code, text, expected",
    [
        (C.UNAVAILABLE, ENVOY_CONNECT_FAILURE, (errors.Unavailable, "inventory is unavailable; try again later")),
        (C.UNAVAILABLE, "no healthy upstream", (errors.Unavailable, "inventory is unavailable; try again later")),
        (C.DEADLINE_EXCEEDED, "request timeout", (errors.DeadlineExceeded, "inventory did not answer in time")),
        (
            C.INTERNAL,
            "Traceback: KeyError 'price'",
            (errors.Internal, f"inventory could not handle this request: a fault of ShopMesh, logged under {RID}"),
        ),
    ],
)
def test_a_peers_failure_is_told_in_shopmesh_words_and_its_text_logged(code, text, expected, caplog):
    class Call:  # the call being served, as request_context sees it
        def invocation_metadata(self):
            return (("x-request-id", RID.split()[-1]),)

    def serve():
        request_context.bind(Call(), from_envoy=True)
        return from_rpc_error(peer_error(code, text), "inventory", callers_fields=("items",))

    error = contextvars.copy_context().run(serve)
    assert (type(error), error.message) == expected
    [record] = [r for r in caplog.records if r.name == "meshkit.status"]
    assert (record.peer, record.peer_code, record.peer_details) == ("inventory", code.name, text)


def test_a_peers_invalid_argument_is_the_callers_only_about_the_callers_fields():
    def violation(field):
        return error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description="must be 1 to 64 letters")
            ]
        )

    theirs = from_rpc_error(
        peer_error(C.INVALID_ARGUMENT, "bad", violation("items[0].product_id")), "inventory", callers_fields=("items",)
    )
    assert isinstance(theirs, errors.InvalidArgument) and theirs.violations[0].field == "items[0].product_id"
    ours = from_rpc_error(
        peer_error(C.INVALID_ARGUMENT, "bad", violation("reservation_id")), "inventory", callers_fields=("items",)
    )
    assert isinstance(ours, errors.Internal) and "reservation_id" not in ours.message
