"""Keep freed memory in the process while an engine runs (glibc only).

The exact engines allocate and free many temporaries of a few MB to a few tens of MB.
glibc's malloc returns blocks above its mmap threshold to the operating system on
every free, so each new temporary starts with fresh pages, and every 4 KB page costs
a fault on first touch. On the 2-core development machine these faults took about a
third of a 3 x 1024 slice (30 of 108 s). Raising the mmap and trim thresholds for the
duration of a call makes those blocks come back from the heap instead; the defaults
are restored afterwards, which also hands the memory back.

NumPy also asks the kernel for transparent huge pages on every large array
(``madvise``). Where the kernel's THP ``defrag`` setting is ``madvise`` (Debian's
default), each such fault may compact memory synchronously: on the busy 2-core machine a
353 MB copy of a conv net's patterns took 3.8 s instead of ~0.2 s, and a 225,000-region
SmallCNN slice spent 12.8 s cutting with it and 6.1 s without (an MLP 3 x 1024 plane:
51.7 s and 47.6 s). The engines turn that request off for the duration of a call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
#: glibc's largest allowed mmap threshold on 64-bit systems (32 MB).
_MMAP_THRESHOLD = 32 << 20
#: Defaults restored afterwards (glibc's documented defaults).
_DEFAULTS = {_M_TRIM_THRESHOLD: 128 << 10, _M_TOP_PAD: 128 << 10, _M_MMAP_THRESHOLD: 128 << 10}


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        func = libc.mallopt
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_MALLOPT = _mallopt()
_depth = 0


def _hugepage_switch() -> object | None:
    """NumPy's (private) switch of huge-page madvise for large arrays, where it has one."""
    import numpy as np

    for module in (getattr(np, "_core", None), getattr(np, "core", None)):
        switch = getattr(getattr(module, "multiarray", None), "_set_madvise_hugepage", None)
        if switch is not None:
            return switch
    return None


_SET_HUGEPAGE = _hugepage_switch()
_hugepage_before: bool | None = None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, freed blocks up to 32 MB stay in the heap for reuse, and NumPy does
    not ask for huge pages (see the module docstring); both are restored afterwards."""
    global _depth, _hugepage_before
    if _MALLOPT is None:
        yield
        return
    if _depth == 0:
        if callable(_SET_HUGEPAGE):
            _hugepage_before = bool(_SET_HUGEPAGE(False))  # returns the previous setting
        _MALLOPT(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        # keep up to 256 MB of freed memory at the top of the heap (bounds the extra RSS)
        _MALLOPT(_M_TRIM_THRESHOLD, 256 << 20)
        _MALLOPT(_M_TOP_PAD, 16 << 20)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for param, value in _DEFAULTS.items():
                _MALLOPT(param, value)
            if callable(_SET_HUGEPAGE) and _hugepage_before is not None:
                _SET_HUGEPAGE(_hugepage_before)
