"""The heap settings of a scoring process (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from threecad.eval import heap

_FAULTS = """
import resource, sys
import numpy as np
from threecad.eval import heap
if sys.argv[1] == "reuse":
    assert heap.reuse_freed_memory() is True
a = np.ones(32 << 20, np.uint8); del a   # 32 MiB touched, then freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(32 << 20, np.uint8); del b   # the same again
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
heap.return_freed_memory()
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_return_freed_memory_never_fails():
    heap.return_freed_memory()  # glibc: trims; elsewhere: nothing


@pytest.mark.skipif(heap._glibc() is None, reason="glibc only")
def test_reuse_freed_memory_serves_a_freed_block_again_without_page_faults():
    """In children (the setting is process-wide): by default a freed 32 MiB block is unmapped
    and the next one faults its pages in again (zeroed by the kernel); after
    reuse_freed_memory it comes back from the heap with no fault."""
    plain = _faults("plain")  # 8,192 pages of 4 KiB, or down to 16 huge pages
    assert plain >= 16
    assert _faults("reuse") < min(50, plain // 4)
