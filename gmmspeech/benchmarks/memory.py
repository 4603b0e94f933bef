"""Resident-memory measurement for benchmarks (Linux ``/proc``; 0 elsewhere)."""

from __future__ import annotations

import os
import resource
import threading
import time


def current_rss_mib() -> float:
    """Current resident set size of this process in MiB (0.0 when unknown)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def max_rss_mib() -> float:
    """Peak resident set size of this process since it started, in MiB.

    Linux's ``VmHWM``, which starts afresh at ``exec``; ``ru_maxrss`` (the fallback
    elsewhere) does not: a process started by fork + exec from a large one reports that
    one's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PeakRSS:
    """Context manager sampling this process's RSS every ``interval`` seconds.

    ``peak`` is the largest RSS seen inside the block (MiB); ``start`` the RSS on entry.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = 0.0
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = current_rss_mib()
        self.peak = self.start
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, current_rss_mib())
