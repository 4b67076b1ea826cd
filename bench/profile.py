"""Where a service spends its time under load: py-spy samples the running process
from outside (no code change, no restart) and the stacks are summed per function."""

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import require

TOP = 15
LINE_NUMBER = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Hotspot:
    function: str  # "name (file)"
    self_percent: float  # samples where it was running itself
    total_percent: float  # samples where it was on the stack


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen:
    """py-spy record, in the background for `seconds`, without pausing the process."""
    return subprocess.Popen(
        [
            require("py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            f"{max(1, round(seconds))}",
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(recorder: subprocess.Popen, output: Path) -> list[Hotspot]:
    _, errors = recorder.communicate(timeout=60)
    if recorder.returncode != 0:
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {errors.strip()[-500:]}")
    return hotspots(output.read_text())


def hotspots(collapsed: str, top: int = TOP) -> list[Hotspot]:
    """The `top` functions by own samples, from py-spy's collapsed stacks
    ("outer (file:line);...;inner (file:line) COUNT" per line)."""
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    if not samples:
        return []
    return [
        Hotspot(function, 100 * count / samples, 100 * total[function] / samples)
        for function, count in own.most_common(top)
    ]
