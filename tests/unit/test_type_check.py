"""make lint's type check is strict enough to catch what a reader would miss: a value of the
wrong type in a proto field, a servicer method declared for another request, a reply of the
wrong message. Each case is checked with the project's own mypy configuration."""

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

WRONG = {
    "a str where a proto field is an int": (
        "from shopmesh.orders.v1 import orders_pb2\n\norders_pb2.ListOrdersRequest(page_size='50')\n",
        'Argument "page_size" to "ListOrdersRequest" has incompatible type "str"; expected "int | None"',
    ),
    "an int where a proto field is a str": (
        "from shopmesh.orders.v1 import orders_pb2\n\norders_pb2.GetOrderRequest(order_id=5)\n",
        'Argument "order_id" to "GetOrderRequest" has incompatible type "int"; expected "str | None"',
    ),
    "a servicer method taking another request": (
        "from typing import Any\n\nimport grpc\n\nfrom shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc\n\n\n"
        "class Servicer(orders_pb2_grpc.OrderServiceServicer):\n"
        "    async def GetOrder(\n"
        "        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]\n"
        "    ) -> orders_pb2.Order:\n"
        "        return orders_pb2.Order()\n",
        'Argument 1 of "GetOrder" is incompatible with supertype',
    ),
    "a servicer method answering with another message": (
        "from typing import Any\n\nimport grpc\n\nfrom shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc\n\n\n"
        "class Servicer(orders_pb2_grpc.OrderServiceServicer):\n"
        "    async def GetOrder(\n"
        "        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext[Any, Any]\n"
        "    ) -> orders_pb2.ListOrdersResponse:\n"
        "        return orders_pb2.ListOrdersResponse()\n",
        'Return type "Coroutine[Any, Any, ListOrdersResponse]" of "GetOrder" incompatible with return type',
    ),
}

RIGHT = (
    "from typing import Any\n\nimport grpc\n\nfrom shopmesh.orders.v1 import orders_pb2, orders_pb2_grpc\n\n\n"
    "class Servicer(orders_pb2_grpc.OrderServiceServicer):\n"
    "    async def GetOrder(\n"
    "        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext[Any, Any]\n"
    "    ) -> orders_pb2.Order:\n"
    "        return orders_pb2.Order(order_id=request.order_id)\n"
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module's checks: the stubs are analysed once, not per case."""
    return tmp_path_factory.mktemp("mypy-cache")


def check(source: str, tmp_path: Path, cache: Path) -> tuple[str, int]:
    module = tmp_path / "example.py"
    module.write_text(source)
    report, errors, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache), str(module)]
    )
    return report + errors, status


@pytest.mark.parametrize("case", WRONG, ids=list(WRONG))
def test_the_type_check_refuses(case: str, tmp_path: Path, cache: Path) -> None:
    source, message = WRONG[case]
    report, status = check(source, tmp_path, cache)
    assert status == 1, report
    assert message in report, report


def test_the_type_check_passes_a_servicer_typed_right(tmp_path: Path, cache: Path) -> None:
    report, status = check(RIGHT, tmp_path, cache)
    assert (status, report.strip()) == (0, "Success: no issues found in 1 source file")
