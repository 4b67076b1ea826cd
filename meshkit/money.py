"""Exact money as an integer count of nanos (10^-9 of a currency unit), never a float."""

import re
from dataclasses import dataclass

NANOS_PER_UNIT = 1_000_000_000
_CURRENCY = re.compile(r"[A-Z]{3}")


def is_currency_code(code: str) -> bool:
    """Whether code has the form of an ISO 4217 currency code (three capital letters)."""
    # fullmatch: "$" would also match before a final line break ("EUR\n")
    return bool(_CURRENCY.fullmatch(code))


@dataclass(frozen=True, order=True)
class Money:
    """An amount of one currency, in nanos of its unit."""

    currency: str
    nanos: int

    @classmethod
    def of(cls, currency: str, units: int, nanos: int = 0) -> "Money":
        """The amount google.type.Money splits into units and nanos (of the same sign)."""
        return cls(currency, units * NANOS_PER_UNIT + nanos)

    @property
    def units_and_nanos(self) -> tuple[int, int]:
        """google.type.Money's split: units and nanos carry the same sign."""
        units = abs(self.nanos) // NANOS_PER_UNIT
        nanos = abs(self.nanos) % NANOS_PER_UNIT
        sign = -1 if self.nanos < 0 else 1
        return sign * units, sign * nanos

    def __mul__(self, factor: int) -> "Money":
        return Money(self.currency, self.nanos * factor)

    def __add__(self, other: "Money") -> "Money":
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.currency, self.nanos + other.nanos)

    def __str__(self) -> str:
        units, nanos = divmod(abs(self.nanos), NANOS_PER_UNIT)
        cents = f"{nanos:09d}"[:2]
        rest = f"{nanos:09d}"[2:].rstrip("0")
        sign = "-" if self.nanos < 0 else ""
        return f"{sign}{units}.{cents}{rest} {self.currency}"
