"""Ordered thread-pool map with a progress bar, shared by the passes that read many files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

__all__ = ["thread_map"]

T = TypeVar("T")
R = TypeVar("R")


def thread_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None, progress: bool = False,
               desc: str = "", unit: str = "it") -> list[R]:
    """``[fn(x) for x in items]`` in ``workers`` threads (default: all CPUs), results in input order.

    A tqdm bar on standard error counts finished items when ``progress`` is true. With one
    worker no thread is started. Threads pay off where ``fn`` releases the GIL (file I/O,
    OpenCV decoding, numba ``nogil`` kernels).
    """
    from tqdm import tqdm

    items = list(items)
    workers = workers or os.cpu_count() or 1
    out: list[R] = []
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, leave=False) as bar:
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
