"""Shared pieces of the benchmark scripts: the benchmark MLPs and machine facts."""

from __future__ import annotations

import ctypes
import gc
import platform
import resource
import threading

import torch
from torch import nn


def mlp(width: int) -> nn.Sequential:
    """MLP 784-w-w-w-10 (torch.manual_seed(0), default init, Linear/ReLU), in eval mode."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)).eval()


def reset_peak_rss() -> float:
    """Start a new peak-memory window; returns the resident memory it starts from, in MB.

    Garbage is collected and freed heap pages handed back first (glibc's malloc_trim), so
    what a case allocates above that start is its own, not pages a previous case left in
    the allocator. Linux: clear_refs 5 resets VmHWM to the current RSS; elsewhere the peak
    stays the process's and the start is 0.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory, in MB: since the last reset_peak_rss where that works (Linux),
    else of the whole process so far."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def live_heap_mb() -> float | None:
    """Heap memory in use now (glibc's mallinfo2: allocated chunks plus mmapped blocks), in
    MB; None where that is not available."""
    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    info.restype = _MallInfo2
    m = info()
    return (m.uordblks + m.hblkhd) / 2**20


class HeapPeak:
    """Peak of :func:`live_heap_mb` over a ``with`` block, sampled every `interval` seconds.

    Unlike resident memory it does not count freed pages the allocator keeps, so it varies
    little from run to run; a peak shorter than the interval can be missed. ``start`` and
    ``peak`` are None where mallinfo2 is not available.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.start: float | None = None
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HeapPeak:
        gc.collect()
        self.start = self.peak = live_heap_mb()
        if self.start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak or 0.0, live_heap_mb() or 0.0)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak or 0.0, live_heap_mb() or 0.0)


def machine() -> str:
    """What ran the benchmark (architecture and torch threads)."""
    return f"{platform.machine()} {torch.get_num_threads()} threads"
