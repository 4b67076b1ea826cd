"""What the benchmark ran on, written beside its figures: ratios carry across
machines, absolute numbers only within one."""

import os
import platform
import re
import sqlite3
import subprocess

from bench.loadgen import require
from devmesh import envoy_config


def describe() -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "envoy": _version([envoy_config.envoy_binary(), "--version"], r"version: \S+?/(\S+?)/"),
        "h2load": _version([require("h2load"), "--version"], r"nghttp2/(\S+)"),
        "wrk": _version([require("wrk"), "--version"], r"wrk (\S+)"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(command: list[str], pattern: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(pattern, result.stdout + result.stderr)
    return found.group(1) if found else "unknown"
