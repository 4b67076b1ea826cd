"""Who is calling, as Envoy's edge verified it, and the one rule Envoy cannot apply:
a customer acts only for their own email.

Envoy checks the token and the caller's role per method; it passes the verified
subject, email and roles on in x-shopmesh-* headers, after dropping any a client sent,
and marks every call that came through the public edge. The headers are believed only
from Envoy's own certificate (meshkit.request_context). A call without that mark came
from another service through the mesh listener and acts for nobody in particular.
"""

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

from meshkit.errors import PermissionDenied

EDGE_HEADER = "x-shopmesh-edge"
SUBJECT_HEADER = "x-shopmesh-subject"
EMAIL_HEADER = "x-shopmesh-email"
ROLES_HEADER = "x-shopmesh-roles"
OPERATOR = "operator"


@dataclass(frozen=True)
class Caller:
    via_edge: bool = False
    subject: str = ""
    email: str = ""
    roles: frozenset[str] = frozenset()

    @property
    def sees_everything(self) -> bool:
        """Operators, and services calling each other, act for every customer."""
        return not self.via_edge or OPERATOR in self.roles

    def owns(self, owner_email: str) -> bool:
        """Whether this caller may see what belongs to owner_email."""
        return self.sees_everything or (bool(self.email) and _same_email(owner_email, self.email))

    def acting_for(self, requested_email: str) -> str:
        """The customer email a call acts for: for a customer always their own (asking
        for none means that too), PermissionDenied when they name someone else; for an
        operator or a service, the one requested."""
        if self.sees_everything:
            return requested_email
        if requested_email and not self.owns(requested_email):
            raise PermissionDenied("a customer may act only for their own email")
        return self.email


def from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    headers = {key: value for key, value in metadata if isinstance(value, str)}
    return Caller(
        via_edge=headers.get(EDGE_HEADER) == "public",
        subject=headers.get(SUBJECT_HEADER, ""),
        email=headers.get(EMAIL_HEADER, ""),
        roles=frozenset(parse_roles(headers.get(ROLES_HEADER, ""))),
    )


def parse_roles(value: str) -> list[str]:
    """Envoy passes a string claim as it is, and a list claim as base64url JSON."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    if isinstance(decoded, list):
        return [str(role) for role in decoded]
    return value.replace(",", " ").split()


def _same_email(a: str, b: str) -> bool:
    # The domain is case-insensitive, and no shop tells two customers apart by case alone.
    return a.strip().lower() == b.strip().lower()
