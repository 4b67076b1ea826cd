"""CPU time and memory of the processes under test, read from the kernel (psutil)."""

from collections.abc import Mapping

import psutil


class ProcessMeter:
    """name -> process; CPU seconds (user + system) and resident memory of each."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def cpu_seconds(self) -> dict[str, float]:
        seconds = {}
        for name, process in self._processes.items():
            times = process.cpu_times()
            seconds[name] = times.user + times.system
        return seconds

    def cpu_since(self, before: Mapping[str, float]) -> dict[str, float]:
        now = self.cpu_seconds()
        return {name: now[name] - before[name] for name in now}

    def rss_mb(self, name: str) -> float:
        return self._processes[name].memory_info().rss / 2**20
