"""Ordered thread-pool map with progress, shared by the passes that read many files.

Progress itself lives in :mod:`threecad.progress` (``progress`` is re-exported here).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from .progress import progress

_progress = progress  # the argument of thread_map shadows the name

__all__ = ["thread_map", "progress"]

T = TypeVar("T")
R = TypeVar("R")


def thread_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None, progress: bool = False,
               desc: str = "", unit: str = "it") -> list[R]:
    """``[fn(x) for x in items]`` in ``workers`` threads (default: all CPUs), results in input order.

    When ``progress`` is true, finished items are reported through :func:`threecad.progress.progress`
    (a bar on a terminal, periodic log lines otherwise). With one
    worker no thread is started. Threads pay off where ``fn`` releases the GIL (file I/O,
    OpenCV decoding, numba ``nogil`` kernels).
    """
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be at least 1 (or None for all CPUs), got {workers}")
    items = list(items)
    workers = workers or os.cpu_count() or 1
    out: list[R] = []
    with _progress(len(items), desc, unit=unit, enabled=progress) as bar:
        if workers == 1:
            for item in items:
                out.append(fn(item))
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(fn, items, chunksize=1):
                    out.append(res)
                    bar.update()
    return out
