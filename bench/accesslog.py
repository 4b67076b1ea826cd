"""Failed calls as Envoy saw them. A gRPC error travels in a 200 response's
headers or trailers, invisible to h2load; Envoy's access log has both."""

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

# the launcher starts Envoy with --file-flush-interval-msec 1000
FLUSH_SECONDS = 1.2


class AccessLog:
    def __init__(self, path: Path, listener: str) -> None:
        self.path = path
        # only calls clients made: the mesh listener carries the services' own calls
        self.listener = listener

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def failures_since(self, mark: int) -> Counter:
        """Outcome -> count of every failed call logged on the listener after mark."""
        return sum(self.failures_by_method_since(mark).values(), Counter())

    def failures_by_method_since(self, mark: int) -> dict[str, Counter]:
        """gRPC method path -> outcome -> count, of every failed call logged on the
        listener after mark: for loads of different methods measured together."""
        time.sleep(FLUSH_SECONDS)
        failures: dict[str, Counter] = defaultdict(Counter)
        with open(self.path, "rb") as log:
            log.seek(mark)
            for line in log:
                entry = json.loads(line)
                if entry["listener"] != self.listener:
                    continue
                outcome = _failure(entry)
                if outcome:
                    failures[entry.get("grpc_path") or ""][outcome] += 1
        return dict(failures)


def _failure(entry: dict) -> str | None:
    if "DC" in (entry.get("response_flags") or ""):
        # the client went away: h2load and wrk drop the calls still in flight when time is up
        return None
    code = str(entry.get("response_code"))
    if not code.startswith("2"):
        return f"HTTP {code} {entry.get('response_flags') or ''}".strip()
    # an error comes in the headers (trailers-only), a normal end as 0 in the trailers
    for field in ("grpc_status", "grpc_status_trailer"):
        status = entry.get(field)
        if status not in (None, "", "-", "0"):
            return f"grpc-status {status}"
    return None
