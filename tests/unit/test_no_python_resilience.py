"""Retries, back-off, circuit breaking and timeouts-with-retry between services
live in Envoy. This scan fails if such code appears in the services."""

import ast
import io
import tokenize

from devmesh.paths import ROOT

PACKAGES = ("orders", "inventory", "notifications", "meshkit")
# Words that name resilience machinery, looked for in code (not comments or docs).
SUSPECT_NAMES = ("retry", "retries", "backoff", "back_off", "circuit", "breaker", "attempt")
SUSPECT_MODULES = ("tenacity", "backoff", "stamina", "pybreaker", "aiobreaker", "retrying")
# The only places allowed to hold such code, and why.
ALLOWED = {
    # Re-opening a stream from the stored cursor, and periodic work's next turn.
    "meshkit/resume.py": "stream resume from the stored cursor; periodic work",
    # Sending email to an SMTP server is no call between services; the issue asks for back-off.
    "notifications/domain.py": "SMTP retry policy",
    "notifications/sender.py": "SMTP retry policy",
    "notifications/ports.py": "what the sender needs to retry SMTP",
    "notifications/storage.py": "SMTP attempt counts",
    "notifications/main.py": "SMTP retry configuration",
    "notifications/api.py": "shows SMTP attempts",
}


def code_names(source: str) -> set[str]:
    """Lower-cased identifiers and attribute names, without comments and strings."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.string.lower() for t in tokens if t.type == tokenize.NAME}


def retry_loops(source: str) -> list[int]:
    """Lines of loops that catch an exception and sleep: the shape of a hand-made retry."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.While, ast.For, ast.AsyncFor)):
            inner = list(ast.walk(node))
            catches = any(isinstance(n, ast.Try) and n.handlers for n in inner)
            sleeps = any(
                isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", "")) == "sleep" for n in inner
            )
            if catches and sleeps:
                found.append(node.lineno)
    return found


def findings(path: str, source: str) -> list[str]:
    problems = []
    names = code_names(source)
    for word in SUSPECT_NAMES:
        hits = sorted(n for n in names if word in n)
        if hits:
            problems.append(f"{path}: names {hits}")
    for module in SUSPECT_MODULES:
        if module in names and (f"import {module}" in source or f"from {module}" in source):
            problems.append(f"{path}: imports {module}")
    problems += [f"{path}:{line}: a loop that catches and sleeps" for line in retry_loops(source)]
    return problems


def test_services_hold_no_resilience_code_of_their_own():
    problems = []
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            path = str(file.relative_to(ROOT))
            if path in ALLOWED or "/migrations/" in path:
                continue
            problems += findings(path, file.read_text())
    assert not problems, "resilience belongs in Envoy:\n" + "\n".join(problems)


def test_the_allow_list_names_real_files():
    assert all((ROOT / path).is_file() for path in ALLOWED)


def test_the_scan_catches_a_hand_made_retry():
    source = """
import asyncio

async def reserve(stub, request):
    for attempt in range(3):
        try:
            return await stub.ReserveStock(request)
        except Exception:
            await asyncio.sleep(0.1 * 2 ** attempt)
"""
    assert findings("x.py", source) == ["x.py: names ['attempt']", "x.py:5: a loop that catches and sleeps"]
    assert findings("y.py", "from tenacity import retry\n") == ["y.py: names ['retry']", "y.py: imports tenacity"]
    # Words in comments and strings are not code.
    assert findings("z.py", '# no retry here\nMESSAGE = "retry later"\n') == []
