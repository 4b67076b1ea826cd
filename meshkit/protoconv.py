"""Conversions between meshkit's plain values and their protobuf messages."""

import datetime as dt
import enum
from collections.abc import Mapping
from typing import TypeVar, cast

from google.protobuf import timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.type import money_pb2

from meshkit.money import NANOS_PER_UNIT, Money

Member = TypeVar("Member", bound=enum.Enum)
# a generated enum's value: typed as a subclass of int in the generated .pyi
ProtoValue = TypeVar("ProtoValue", bound=int)


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
    """value as a google.protobuf.Timestamp; None (an unset field) for None."""
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def enum_to_proto(members: type[Member], proto_enum: type[ProtoValue]) -> Mapping[Member, ProtoValue]:
    """Each member of a domain enum with the value of proto_enum of the same name
    (OrderStatus.PENDING -> ORDER_STATUS_PENDING): a dict built once, so a conversion is a
    lookup. Built at import, it fails there when a member has no value in the API, so a status
    added to a domain and forgotten in its .proto stops the service at start, not a call later."""
    wrapper = _enum_type(proto_enum)
    prefix = _value_prefix(wrapper)
    missing = [member.name for member in members if prefix + member.name not in wrapper.keys()]
    if missing:
        raise ValueError(
            f"{wrapper.DESCRIPTOR.full_name} has no value for "
            + ", ".join(f"{members.__name__}.{name} (expected {prefix}{name})" for name in missing)
        )
    return {member: cast(ProtoValue, wrapper.Value(prefix + member.name)) for member in members}


def enum_name(proto_enum: type[ProtoValue], value: int) -> str:
    """The name of proto_enum's value without the enum's prefix (ORDER_STATUS_PENDING ->
    PENDING), as a domain enum member is named; ValueError for a value the enum lacks."""
    wrapper = _enum_type(proto_enum)
    return wrapper.Name(value).removeprefix(_value_prefix(wrapper))


def _enum_type(proto_enum: type[ProtoValue]) -> EnumTypeWrapper:
    # typed as a class in the generated .pyi; at run time, protobuf's wrapper of the enum
    return cast(EnumTypeWrapper, proto_enum)


def _value_prefix(wrapper: EnumTypeWrapper) -> str:
    """The prefix of every value's name: buf's STANDARD lint has each value start with the
    enum's name in UPPER_SNAKE_CASE and the zero value be that plus UNSPECIFIED."""
    zero = wrapper.Name(0)
    if not zero.endswith("_UNSPECIFIED"):
        raise ValueError(f"{wrapper.DESCRIPTOR.full_name}'s zero value {zero} is not named <PREFIX>_UNSPECIFIED")
    return zero.removesuffix("UNSPECIFIED")
