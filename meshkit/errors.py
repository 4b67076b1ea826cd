"""Errors a domain raises, in plain Python. meshkit.status maps them to gRPC
status codes with google.rpc details, in one place."""

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition (google.rpc.PreconditionFailure.Violation)."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One quota a call would exceed (google.rpc.QuotaFailure.Violation): subject names
    whose quota it is, such as "clientip:203.0.113.7"."""

    subject: str
    description: str


class DomainError(Exception):
    """Base of every error a domain raises on purpose.

    reason is a stable UPPER_SNAKE_CASE word for clients (google.rpc.ErrorInfo).
    """

    reason = "DOMAIN_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class InvalidArgument(DomainError):
    """Fields of the request are bad, whatever the state of the system."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" if v.field else v.description for v in violations))
        self.violations = violations


class NotFound(DomainError):
    """No resource of resource_type has these names (or none the caller may see)."""

    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, names: list[str] | str) -> None:
        self.names = [names] if isinstance(names, str) else list(names)
        self.resource_type = resource_type
        super().__init__(f"{resource_type} not found: {', '.join(self.names)}")


class AlreadyExists(DomainError):
    """A resource of resource_type by this name exists already."""

    reason = "ALREADY_EXISTS"

    def __init__(self, resource_type: str, name: str, message: str | None = None) -> None:
        self.resource_type = resource_type
        self.name = name
        super().__init__(message or f"{resource_type} already exists: {name}")


class FailedPrecondition(DomainError):
    """The system is not in the state the call needs (an order already shipped, stock too short)."""

    reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        violations: Sequence[PreconditionViolation] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = list(violations)


class PermissionDenied(DomainError):
    """The caller is known but may not do this (for someone else's resource, see NotFound)."""

    reason = "PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """A limit on what one caller, or all of them, may hold at once is reached; the caller
    may try again once it (or the service) holds less."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, violations: Sequence[QuotaViolation], *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.violations = list(violations)


class Unavailable(DomainError):
    """A service this one depends on could not answer; the caller may try again."""

    reason = "UPSTREAM_UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """A service this one depends on did not answer in time."""

    reason = "UPSTREAM_DEADLINE_EXCEEDED"


class Internal(DomainError):
    """A fault of the mesh, not of the request (a service this one depends on failed, or
    refused a call this one made): trying again will not help."""

    reason = "UPSTREAM_FAILED"


# The most violations one error names: each travels in the response's trailers, and a
# request of 10,000 bad items would make trailers larger than HTTP/2 lets a peer accept.
MAX_VIOLATIONS = 20


@dataclass
class Validator:
    """Collects the field violations of a request, so that one error names them all (the
    first MAX_VIOLATIONS of them, and how many more there are)."""

    violations: list[FieldViolation] = field(default_factory=list)

    def check(self, ok: bool, field_name: str, description: str) -> bool:
        """Records a violation of field_name unless ok; returns ok."""
        if not ok:
            self.violations.append(FieldViolation(field_name, description))
        return ok

    def add(self, field_name: str, description: str) -> None:
        self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self) -> None:
        """InvalidArgument naming the violations recorded, if there are any."""
        if len(self.violations) > MAX_VIOLATIONS:
            more = len(self.violations) - MAX_VIOLATIONS
            raise InvalidArgument([*self.violations[:MAX_VIOLATIONS], FieldViolation("", f"and {more} more")])
        if self.violations:
            raise InvalidArgument(self.violations)
