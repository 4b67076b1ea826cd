"""The ownership rule: who a call is for, read from the headers only Envoy sets."""

import base64
import json

import pytest

from meshkit.caller import Caller, from_metadata, parse_roles
from meshkit.errors import PermissionDenied

ANN = Caller(via_edge=True, subject="ann", email="ann@example.com", roles=frozenset({"customer"}))
OPERATOR = Caller(via_edge=True, subject="ops", email="ops@example.com", roles=frozenset({"operator"}))
SERVICE = Caller()  # another service, on the mesh listener


def test_roles_arrive_as_base64_json_for_a_list_claim_or_as_text():
    as_list = base64.urlsafe_b64encode(json.dumps(["customer", "operator"]).encode()).decode().rstrip("=")
    assert parse_roles(as_list) == ["customer", "operator"]
    assert parse_roles("customer operator") == ["customer", "operator"]
    assert parse_roles("customer") == ["customer"]
    assert parse_roles("") == []


def test_a_customer_owns_only_their_own_email():
    assert ANN.owns("ann@example.com") and ANN.owns("Ann@Example.COM")
    assert not ANN.owns("bob@example.com")
    assert OPERATOR.owns("bob@example.com") and SERVICE.owns("bob@example.com")


def test_a_customer_token_without_email_owns_nothing():
    assert not Caller(via_edge=True, subject="x", roles=frozenset({"customer"})).owns("")


def test_a_customer_acts_for_themselves():
    assert ANN.acting_for("") == "ann@example.com"
    assert ANN.acting_for("ANN@example.com") == "ann@example.com"
    with pytest.raises(PermissionDenied):
        ANN.acting_for("bob@example.com")
    assert OPERATOR.acting_for("") == "" and OPERATOR.acting_for("bob@example.com") == "bob@example.com"


def test_no_edge_mark_means_a_service_and_any_other_edge_value_counts_as_none():
    assert from_metadata([("x-shopmesh-email", "bob@example.com")]) == Caller(email="bob@example.com")
    assert from_metadata([("x-shopmesh-edge", "public"), ("x-shopmesh-roles", "operator")]).sees_everything
    assert not from_metadata([("x-shopmesh-edge", "public"), ("x-shopmesh-roles", "customer")]).sees_everything
    # binary metadata is never an identity
    assert from_metadata([("x-shopmesh-edge", b"public")]) == SERVICE
