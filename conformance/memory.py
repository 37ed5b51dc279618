"""Large arrays without a page fault per page, for the large check.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB by default) with a fresh
mapping and unmaps it when freed, so each array of the large check (2^24 elements and more, made and
freed dozens of times per example: inputs, copies, float64 expectations, gradients) is faulted in by
the kernel page by page, every time. On a virtual machine that was more than half of the check's
time. Raising the threshold keeps such blocks in the heap, where a freed one is reused by the next.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Any, Iterable

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap
_TRIM_THRESHOLD = (1 << 31) - 1  # freed memory stays with the process ...
_TOP_PAD = 256 << 20  # ... and the heap grows in steps of 256 MiB

# An input of this many elements or more makes a process keep its blocks (the large check's
# largest input holds 2^24; ordinary cases, a few dozen).
LARGE_ELEMENTS = 1 << 20

_kept = False


def keep_large_blocks_for(arrays: Iterable[Any]) -> None:
    """``keep_large_blocks`` where one of ``arrays`` (NumPy arrays or None) is large."""
    if not _kept and any(a is not None and getattr(a, "size", 0) >= LARGE_ELEMENTS for a in arrays):
        keep_large_blocks()


def keep_large_blocks() -> bool:
    """Make this process keep and reuse large freed blocks (glibc only; elsewhere nothing changes).

    For the process's whole life: its memory no longer shrinks after a peak, which the large check
    reaches anyway. Called by the checks that allocate such arrays, never on import, so a pytest
    session that loads the plugin keeps its allocator as it was. True when the allocator took it."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _kept = all(mallopt(param, value) == 1 for param, value in
                ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))
    return _kept
