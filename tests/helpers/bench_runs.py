"""The benchmark run as a user runs it, for the tests that check what it reports."""

import signal
import subprocess
import sys

import pytest

from devmesh.paths import ROOT


def run_bench(arguments: list[str], timeout: float) -> str:
    """`python -m bench` with arguments; its output, once it exited 0."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = bench.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Ctrl-C, as a user would: the benchmark stops the meshes it started
        bench.send_signal(signal.SIGINT)
        output, _ = bench.communicate(timeout=60)
        pytest.fail(f"the benchmark did not finish in {timeout:g} s:\n{output[-3000:]}")
    assert bench.returncode == 0, output[-3000:]
    return output
