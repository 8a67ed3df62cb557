"""The process heap during scoring (glibc only; elsewhere these do nothing).

Scoring at native size allocates, per image and in several threads, arrays of a few to
tens of megabytes (decoded masks, region labels, maps on the grid). glibc serves blocks
that large by ``mmap`` and unmaps them when freed, so every image's arrays start on fresh
pages that the kernel zeroes on first touch: measured with ``perf`` on the ANI category of
``scripts/bench_eval_full.py --native`` (4,936 images, 3.7 G pixels), 13 s of system time
in 82 s of CPU. :func:`reuse_freed_memory` makes the heap keep and reuse such blocks
(8.9 s of system time on the same run); :func:`return_freed_memory` hands the free pages
back between phases, so that the resident set still falls after each one.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["reuse_freed_memory", "return_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

REUSE_BLOCKS_UP_TO = 256 << 20
"""Blocks up to this size come from the heap (and are reused) after :func:`reuse_freed_memory`."""


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018  (glibc has it; musl and others do not)
        libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory() -> bool:
    """Keep freed blocks up to :data:`REUSE_BLOCKS_UP_TO` in the heap for the next allocation
    instead of unmapping them (process-wide; the ``threecad eval`` command sets it, a library
    caller may). Returns whether the allocator took the setting."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, REUSE_BLOCKS_UP_TO) == 1
    # free() then trims the heap's top only past this much free memory; the phases trim explicitly
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * REUSE_BLOCKS_UP_TO) == 1 and ok)


def return_freed_memory() -> None:
    """Give the heap's free pages back to the system.

    Pass 1 and pass 2 allocate many mid-sized arrays (masks, resized maps) in several
    threads; their freed memory stays in the threads' heaps and counts in the resident set
    until trimmed. Trimming between the phases lowers the peak of the next one.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
