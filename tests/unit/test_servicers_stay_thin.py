"""Each service's servicer converts, delegates and converts back: a method body longer than
a few lines means a rule has crept into the API layer, where no unit test without gRPC
reaches it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICERS = ("orders/api.py", "inventory/api.py", "notifications/api.py")
MAX_BODY_LINES = 8


def long_methods(source: str) -> list[str]:
    """Class.method: body lines, for each method of source's classes whose body (its
    docstring aside) is longer than MAX_BODY_LINES."""
    found = []
    for cls in (node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)):
        for method in cls.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = method.body
            if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1
            if lines > MAX_BODY_LINES:
                found.append(f"{cls.name}.{method.name}: {lines}")
    return found


def test_every_servicer_method_body_is_at_most_eight_lines() -> None:
    assert {path: long_methods((ROOT / path).read_text()) for path in SERVICERS} == {path: [] for path in SERVICERS}


def test_a_nine_line_body_is_found_and_a_docstring_does_not_count() -> None:
    source = (
        "class Servicer:\n"
        "    async def Long(self, request, context):\n" + "        x = 1\n" * 9 + "\n"
        "    async def Short(self, request, context):\n"
        '        """A docstring."""\n' + "        x = 1\n" * 8
    )
    assert long_methods(source) == ["Servicer.Long: 9"]
