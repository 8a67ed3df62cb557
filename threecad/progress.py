"""Progress of long jobs: bars on a terminal, periodic log lines without one.

Every command reports its phases through :func:`progress`. Where standard error is a
terminal it draws a tqdm bar; where it is not (``nohup``, CI, a cluster job's log file) it
writes one line every ``THREECAD_PROGRESS_INTERVAL`` seconds (default 10) with the phase,
done/total, the rate and the time left, and a last line when a phase that printed something
ends. A phase shorter than the interval prints nothing in a log.

The object returned has the subset of tqdm's interface the project uses (``update``,
``close``, ``total`` that may grow, ``n``, ``set_postfix``, ``set_postfix_str``,
``set_description``, context manager), so a module written against tqdm switches with
``from threecad.progress import progress as tqdm``; tqdm's ``disable=`` is accepted.

``THREECAD_PROGRESS`` forces a mode: ``bars``, ``log`` or ``none``.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

__all__ = ["progress", "LogProgress", "LogSchedule", "NullProgress", "progress_mode", "log_interval", "format_duration",
           "PROGRESS_ENV", "INTERVAL_ENV", "DEFAULT_INTERVAL_S"]

PROGRESS_ENV = "THREECAD_PROGRESS"
INTERVAL_ENV = "THREECAD_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 10.0
_MODES = ("bars", "log", "none")


def progress_mode(file: TextIO | None = None) -> str:
    """``bars`` on a terminal, ``log`` otherwise; ``$THREECAD_PROGRESS`` wins when set to a mode."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in _MODES:
        return forced
    stream = file if file is not None else sys.stderr
    try:
        return "bars" if stream.isatty() else "log"
    except (AttributeError, ValueError):  # a closed or fake stream
        return "log"


def log_interval() -> float:
    """Seconds between two log lines: ``$THREECAD_PROGRESS_INTERVAL`` (>= 0), else 10."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_INTERVAL_S


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h01m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _amount(value: float, unit: str, scale: bool) -> str:
    """``1,200 img`` / ``2.5 img``; with ``scale``, binary prefixes glued to the unit: ``12.0 MiB``."""
    if not scale:
        return f"{value:,.0f} {unit}" if float(value).is_integer() else f"{value:,.1f} {unit}"
    for prefix in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or prefix == "Ti":
            return f"{value:.0f} {unit}" if not prefix else f"{value:.1f} {prefix}{unit}"
        value /= 1024
    return f"{value:.1f} {unit}"  # pragma: no cover


class LogSchedule:
    """When the next log line is due, shared by the phases of a run.

    A run of many short phases (a leaderboard scoring category after category) still gets a
    line every interval: the clock is not restarted by each phase.
    """

    def __init__(self) -> None:
        self.last: float | None = None
        self._lock = threading.Lock()

    def start(self, now: float) -> None:
        with self._lock:
            if self.last is None:
                self.last = now

    def take(self, now: float, interval: float) -> bool:
        """True (and the clock restarted) when a line is due at ``now``."""
        with self._lock:
            if self.last is None:
                self.last = now
            if now - self.last >= interval:
                self.last = now
                return True
            return False


_SCHEDULE = LogSchedule()


class NullProgress:
    """Counts and says nothing (progress switched off)."""

    def __init__(self, total: float | None = None, initial: float = 0, desc: str = "") -> None:
        self.total = total
        self.n = initial
        self.desc = desc

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LogProgress(NullProgress):
    """Periodic log lines for a phase: ``threecad: DESC: n/total unit (p%), rate, ETA``.

    Parameters
    ----------
    total : float or None
        Units of work (may grow: ``bar.total += k``); None when unknown.
    desc : str
        The phase's name.
    unit : str
        What is counted (``img``, ``B``, ...).
    unit_scale : bool
        Print amounts with binary prefixes (for bytes).
    interval : float, optional
        Seconds between lines (default :func:`log_interval`).
    file : text stream, optional
        Where lines go (default: standard error at the time of writing).
    clock : callable, optional
        Monotonic clock in seconds (tests).
    schedule : LogSchedule, optional
        Shared timing of lines (default: the process's); a line is written when
        ``interval`` seconds passed since the last line of any phase, and the phase ran for at
        least ``min(interval, 1 s)`` (so that its rate means something).
    """

    def __init__(self, total: float | None = None, desc: str = "", *, unit: str = "it", unit_scale: bool = False,
                 initial: float = 0, interval: float | None = None, file: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, schedule: LogSchedule | None = None) -> None:
        super().__init__(total, initial, desc)
        self.unit = unit
        self.unit_scale = unit_scale
        self.interval = log_interval() if interval is None else interval
        self._file = file
        self._clock = clock
        self._start = clock()
        self._initial = initial
        self._schedule = schedule if schedule is not None else _SCHEDULE
        self._schedule.start(self._start)
        self._warmup = min(self.interval, 1.0)
        self._postfix = ""
        self._lines = 0
        self._closed = False
        self._lock = threading.Lock()

    def update(self, n: float = 1) -> None:
        with self._lock:
            self.n += n
            now = self._clock()
            if not self._closed and now - self._start >= self._warmup and self._schedule.take(now, self.interval):
                self._emit(self._status(now))

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        items = dict(args[0]) if args and isinstance(args[0], dict) else {}
        items.update({k: v for k, v in kwargs.items() if k != "refresh"})
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._lines:
                elapsed = self._clock() - self._start
                self._emit(f"{self.desc or 'progress'}: done, {self._count(self.n)} "
                           f"in {format_duration(elapsed)}")

    def _count(self, value: float) -> str:
        return _amount(value, self.unit, self.unit_scale)

    def _status(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self._initial) / elapsed
        parts = [f"{self.desc or 'progress'}:"]
        if self.total:
            pct = 100.0 * self.n / self.total
            done = self._count(self.n)
            if not self.unit_scale:
                done = done[: -len(self.unit) - 1]  # 1,200/11,462 img
            parts.append(f"{done}/{self._count(self.total)} ({pct:.0f}%),")
        else:
            parts.append(f"{self._count(self.n)},")
        parts.append(f"{self._count(rate)}/s,")
        if self.total and rate > 0:
            parts.append(f"ETA {format_duration(max(self.total - self.n, 0) / rate)}")
        else:
            parts.append(f"elapsed {format_duration(elapsed)}")
        line = " ".join(parts)
        return f"{line} [{self._postfix}]" if self._postfix else line

    def _emit(self, line: str) -> None:
        self._lines += 1
        stream = self._file if self._file is not None else sys.stderr
        try:
            stream.write(f"threecad: {line}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the work
            pass


def progress(total: float | None = None, desc: str = "", *, unit: str = "it", enabled: bool = True,
             disable: bool | None = None, initial: float = 0, unit_scale: bool = False,
             file: TextIO | None = None, **tqdm_kwargs: Any):
    """Progress of one phase of ``total`` units: a bar, log lines or nothing.

    Parameters
    ----------
    total : float or None
        Units of work in the phase (None when unknown).
    desc : str
        The phase's name, shown on the bar or the log line.
    unit : str
        What is counted.
    enabled : bool
        False: report nothing. ``disable=True`` (tqdm's spelling) does the same.
    initial, unit_scale, file
        As in tqdm (``file`` also decides terminal or not).
    **tqdm_kwargs
        Passed to tqdm when a bar is drawn (``leave``, ``unit_divisor``, ``dynamic_ncols``...).

    Returns
    -------
    tqdm, LogProgress or NullProgress
        All three support ``update``, ``close``, ``total``, ``n``, ``set_postfix`` and ``with``.
    """
    if disable:
        enabled = False
    mode = progress_mode(file) if enabled else "none"
    if mode == "none":
        return NullProgress(total, initial, desc)
    if mode == "log":
        return LogProgress(total, desc, unit=unit, unit_scale=unit_scale, initial=initial,
                           file=file if file is not None and file is not sys.stderr else None)
    from tqdm import tqdm

    tqdm_kwargs.setdefault("leave", False)
    tqdm_kwargs.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
                file=file if file is not None else sys.stderr, **tqdm_kwargs)
