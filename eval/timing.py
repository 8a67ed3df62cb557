"""Where a scoring run spends its time: wall and CPU seconds per phase.

``threecad eval --timings`` prints the table on stderr; ``scripts/bench_eval_cli.py``
shows it next to its ratio. The phases of the in-process scorer are measured from the
outside (:class:`eval.api.PhaseObserver`, an :class:`eval.evaluate.ImageObserver`), so
the scorer itself carries no timing code:

* ``<code> read``: pass 1 of a category (read, check and hash every map, decode the
  masks, regions, keys of the anomalous pixels);
* ``<code> count``: the positives sorted into the index, then pass 2 (every normal pixel
  counted; the per-image table's columns);
* ``<code> metrics``: the category's metrics and breakdowns from the counts.

CPU seconds are the whole process's (all threads): CPU over wall shows how well a phase
uses the cores. This module imports nothing heavy: a timer can be started before the
scorer is imported.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

__all__ = ["PhaseTime", "PhaseTimer"]


@dataclass(frozen=True)
class PhaseTime:
    """One phase: its name, wall and CPU seconds (CPU of every thread of the process)."""

    name: str
    wall: float
    cpu: float


class PhaseTimer:
    """Records consecutive phases of a run (:meth:`phase`, or :meth:`begin` / :meth:`end`).

    Parameters
    ----------
    origin : float, optional
        A ``time.perf_counter()`` reading taken when the run began; :meth:`report` then
        shows the time before the first phase (e.g. start-up) as its own line.
    """

    def __init__(self, origin: float | None = None) -> None:
        self.phases: list[PhaseTime] = []
        self._origin = origin
        self._open: tuple[str, float, float] | None = None
        self._first: float | None = None

    def begin(self, name: str) -> None:
        """Start phase ``name`` (ending the open one, if any)."""
        self.end()
        now = time.perf_counter()
        if self._first is None:
            self._first = now
        self._open = (name, now, time.process_time())

    def end(self) -> None:
        """End the open phase (nothing when none is open)."""
        if self._open is None:
            return
        name, wall, cpu = self._open
        self._open = None
        self.phases.append(PhaseTime(name, time.perf_counter() - wall, time.process_time() - cpu))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``with timer.phase("scan"): ...`` records the block as one phase."""
        self.begin(name)
        try:
            yield
        finally:
            self.end()

    def report(self) -> str:
        """The phases as an aligned table: wall, CPU, share of the measured wall time."""
        self.end()
        rows = list(self.phases)
        if self._origin is not None and self._first is not None:
            rows.insert(0, PhaseTime("before the first phase (start-up)", self._first - self._origin, float("nan")))
        total = sum(p.wall for p in rows) or 1.0
        width = max([len(p.name) for p in rows] + [5])
        lines = [f"{'phase':<{width}}   wall s    CPU s   share"]
        for p in rows:
            cpu = "       -" if p.cpu != p.cpu else f"{p.cpu:8.2f}"
            lines.append(f"{p.name:<{width}} {p.wall:8.2f} {cpu} {100 * p.wall / total:6.1f} %")
        cpu_total = sum(p.cpu for p in rows if p.cpu == p.cpu)
        lines.append(f"{'total':<{width}} {sum(p.wall for p in rows):8.2f} {cpu_total:8.2f}")
        return "\n".join(lines)
