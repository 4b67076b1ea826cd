"""Plain HTTP/JSON through Envoy's gRPC-JSON transcoder."""

import pytest

from tests.helpers.ids import unique
from tests.helpers.waiting import settles


def detail(body: dict, kind: str) -> dict:
    return next(d for d in body["details"] if d["@type"].endswith(kind))


@pytest.fixture
def rest_product(rest):
    def make(available: int, units: str = "7") -> str:
        product_id = unique("R")
        reply = rest(
            "POST",
            "/v1/products",
            {
                "productId": product_id,
                "title": "REST product",
                "price": {"currencyCode": "EUR", "units": units},
                "available": str(available),
            },
        )
        assert reply.status == 200, reply.body
        return product_id

    return make


def test_product_create_get_list_restock_and_stock(rest, rest_product):
    product_id = rest_product(3)
    got = rest("GET", f"/v1/products/{product_id}")
    assert got.status == 200
    assert got.headers["content-type"].startswith("application/json")
    assert got.body["productId"] == product_id
    assert got.body["price"] == {"currencyCode": "EUR", "units": "7", "nanos": 0}
    assert got.body["available"] == "3"
    restocked = rest("POST", f"/v1/products/{product_id}:restock", {"quantity": "2"})
    assert restocked.status == 200 and restocked.body["available"] == "5"
    stock = rest("GET", f"/v1/products/{product_id}/stock")
    assert stock.body == {
        "productId": product_id,
        "available": "5",
        "inStock": True,
        "reserved": "0",
        "awaitingOrder": "0",
    }
    listed = rest("GET", "/v1/products?page_size=1000")
    assert product_id in [p["productId"] for p in listed.body["products"]]
    assert "nextPageToken" in listed.body


def test_order_create_get_list_cancel(rest, rest_product):
    product_id = rest_product(10)
    email = f"{unique('rest').lower()}@example.com"
    created = rest(
        "POST", "/v1/orders", {"customerEmail": email, "items": [{"productId": product_id, "quantity": "3"}]}
    )
    assert created.status == 200, created.body
    order = created.body
    assert order["status"] == "ORDER_STATUS_PENDING"
    assert order["total"] == {"currencyCode": "EUR", "units": "21", "nanos": 0}
    assert order["items"][0]["unitPrice"]["units"] == "7"
    assert rest("GET", f"/v1/orders/{order['orderId']}").body == order
    listed = rest("GET", f"/v1/orders?customer_email={email}")
    assert [o["orderId"] for o in listed.body["orders"]] == [order["orderId"]]
    cancelled = rest("POST", f"/v1/orders/{order['orderId']}:cancel")
    assert cancelled.status == 200 and cancelled.body["status"] == "ORDER_STATUS_CANCELLED"
    assert settles(lambda: rest("GET", f"/v1/products/{product_id}/stock").body["available"] == "10")


def test_snake_case_input_is_accepted_too(rest, rest_product):
    product_id = rest_product(1)
    created = rest(
        "POST", "/v1/orders", {"customer_email": "bo@example.com", "items": [{"product_id": product_id, "quantity": 1}]}
    )
    assert created.status == 200, created.body


def test_confirm_and_ship(rest, rest_product):
    order = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "cy@example.com", "items": [{"productId": rest_product(1), "quantity": 1}]},
    ).body
    assert rest("POST", f"/v1/orders/{order['orderId']}:confirm").body["status"] == "ORDER_STATUS_CONFIRMED"
    assert rest("POST", f"/v1/orders/{order['orderId']}:ship", {}).body["status"] == "ORDER_STATUS_SHIPPED"


def test_unknown_order_is_404_with_a_json_status(rest):
    reply = rest("GET", "/v1/orders/does-not-exist")
    assert reply.status == 404
    assert reply.body["code"] == 5
    assert "does-not-exist" in reply.body["message"]


def test_bad_input_is_400_with_field_violations(rest):
    reply = rest("POST", "/v1/orders", {"customerEmail": "not-an-email", "items": []})
    assert reply.status == 400
    assert reply.body["code"] == 3
    fields = [v["field"] for v in detail(reply.body, "BadRequest")["fieldViolations"]]
    assert fields == ["customer_email", "items"]


def test_oversold_is_400_with_precondition_failure(rest, rest_product):
    product_id = rest_product(1)
    reply = rest(
        "POST", "/v1/orders", {"customerEmail": "di@example.com", "items": [{"productId": product_id, "quantity": "2"}]}
    )
    assert reply.status == 400
    assert reply.body["code"] == 9
    violation = detail(reply.body, "PreconditionFailure")["violations"][0]
    assert violation == {
        "type": "STOCK",
        "subject": f"products/{product_id}",
        "description": "requested 2, available 1",
    }
    assert rest("GET", f"/v1/products/{product_id}/stock").body["available"] == "1"


def test_illegal_transition_is_400(rest, rest_product):
    order = rest(
        "POST",
        "/v1/orders",
        {"customerEmail": "ed@example.com", "items": [{"productId": rest_product(1), "quantity": 1}]},
    ).body
    reply = rest("POST", f"/v1/orders/{order['orderId']}:ship")
    assert reply.status == 400 and reply.body["code"] == 9


def test_duplicate_product_is_409(rest, rest_product):
    product_id = rest_product(1)
    reply = rest(
        "POST",
        "/v1/products",
        {"productId": product_id, "title": "again", "price": {"currencyCode": "EUR", "units": "1"}},
    )
    assert reply.status == 409
    assert reply.body["code"] == 6


def test_repeated_request_id_returns_the_first_order(rest, rest_product):
    product_id = rest_product(5)
    body = {
        "customerEmail": "fa@example.com",
        "items": [{"productId": product_id, "quantity": 2}],
        "requestId": unique("req"),
    }
    first, second = rest("POST", "/v1/orders", body), rest("POST", "/v1/orders", body)
    assert first.body["orderId"] == second.body["orderId"]
    assert rest("GET", f"/v1/products/{product_id}/stock").body["available"] == "3"


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/nothing-here"),
        ("DELETE", "/v1/orders/x"),
        ("POST", "/shopmesh.inventory.v1.InventoryService/ReserveStock"),
        ("POST", "/shopmesh.inventory.v1.InventoryService/ReleaseStock"),
    ],
)
def test_paths_no_public_method_maps_to_are_404(rest, method, path):
    reply = rest(method, path, {"reservationId": "x"} if method == "POST" else None)
    assert reply.status == 404
