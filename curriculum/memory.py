"""Peak memory of a block of code: CUDA max-allocated on GPU, peak resident-set growth on CPU.

On CPU, torch allocations are invisible to tracemalloc, so a daemon thread samples the process
RSS (from /proc/self/statm) every few milliseconds; the figure is the peak minus the RSS at entry.
"""

from __future__ import annotations

import os
import threading

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class PeakMemory:
    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_bytes = 0  # CUDA: peak allocated; CPU: peak RSS growth over the block
        self.peak_total_bytes = 0  # CUDA: same; CPU: peak RSS of the process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._base = rss_bytes()
        self._peak_rss = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak_rss = max(self._peak_rss, rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = self.peak_total_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        self._stop.set()
        self._thread.join()
        self._peak_rss = max(self._peak_rss, rss_bytes())
        self.peak_bytes = self._peak_rss - self._base
        self.peak_total_bytes = self._peak_rss
