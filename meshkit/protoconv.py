"""Conversions between meshkit's plain values and their protobuf messages."""

import datetime as dt

from google.protobuf import timestamp_pb2
from google.type import money_pb2

from meshkit.money import NANOS_PER_UNIT, Money


def money_to_proto(money: Money) -> money_pb2.Money:
    units, nanos = money.units_and_nanos
    return money_pb2.Money(currency_code=money.currency, units=units, nanos=nanos)


def money_from_proto(message: money_pb2.Money) -> Money:
    return Money(message.currency_code, message.units * NANOS_PER_UNIT + message.nanos)


def money_proto_problem(message: money_pb2.Money) -> str | None:
    """Why a google.type.Money is malformed, or None (units and nanos must agree in sign)."""
    if not -NANOS_PER_UNIT < message.nanos < NANOS_PER_UNIT:
        return "nanos must be between -999999999 and 999999999"
    if (message.units > 0 and message.nanos < 0) or (message.units < 0 and message.nanos > 0):
        return "units and nanos must have the same sign"
    return None


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message
