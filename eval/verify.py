"""``threecad verify``: re-score a submission and confirm a results.json, or name what differs.

The recorded protocol (every setting), categories and bootstrap settings are used again;
then the submission's files (each sha256 and the whole-submission digest), the ground
truth digest and every recorded number are compared with the new ones. Scoring is
deterministic, so numbers must be identical (``tolerance`` 0 by default); the time, the
command line and the data root are not compared.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threecad.errors import UsageError

__all__ = ["VerifyReport", "NoDatasetError", "verify_results", "compare_results"]

NOT_COMPARED = ("created", "command", "data_root")
MAX_SHOWN = 50


class NoDatasetError(UsageError):
    """No ground truth folder was given and none recorded still exists."""


@dataclass
class VerifyReport:
    """What :func:`verify_results` found; ``ok`` when nothing differs."""

    results_path: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_values: int = 0
    data_root: str = ""

    @property
    def ok(self) -> bool:
        """True when every digest and value agrees."""
        return not self.differences


def _load(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}); pass a results.json written "
                         f"by 'threecad eval' or 'threecad leaderboard'") from None
    missing = [k for k in ("protocol", "categories", "submission", "ground_truth") if k not in obj] \
        if isinstance(obj, dict) else ["(not an object)"]
    if missing:
        raise UsageError(f"{path} is not a threecad results.json (missing {', '.join(missing)})")
    return obj


def _walk(a: Any, b: Any, where: str, out: list[str], tolerance: float, counter: list[int]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in NOT_COMPARED:
                continue
            if k not in a:
                out.append(f"{where}{k}: not recorded, re-scored {_short(b[k])}")
            elif k not in b:
                out.append(f"{where}{k}: recorded {_short(a[k])}, missing when re-scored")
            else:
                _walk(a[k], b[k], f"{where}{k}.", out, tolerance, counter)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{where}{i}.", out, tolerance, counter)
        return
    counter[0] += 1
    name = where.rstrip(".")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a == b or (tolerance and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance):
            return
        out.append(f"{name}: recorded {a!r}, re-scored {b!r} (difference {b - a:+.3g})")
    elif a != b:
        out.append(f"{name}: recorded {_short(a)}, re-scored {_short(b)}")


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def compare_results(recorded: dict[str, Any], rescored: dict[str, Any], *, tolerance: float = 0.0) -> tuple[list[str], int]:
    """Differences between two results objects (JSON form) and the number of values compared."""
    out: list[str] = []
    counter = [0]
    rec_files = recorded["submission"].get("files", {})
    new_files = rescored["submission"].get("files", {})
    for name in sorted(set(rec_files) | set(new_files)):
        if name not in new_files:
            out.append(f"submission file {name}: recorded, absent from the submission now")
        elif name not in rec_files:
            out.append(f"submission file {name}: present now, not in the recorded results")
        elif rec_files[name] != new_files[name]:
            out.append(f"submission file {name}: sha256 recorded {rec_files[name][:12]}..., "
                       f"now {new_files[name][:12]}...")
    counter[0] += len(rec_files)
    for key in ("format_version", "method", "team"):
        _walk(recorded.get(key), rescored.get(key), f"{key}.", out, tolerance, counter)
    _walk(recorded["submission"].get("digest"), rescored["submission"].get("digest"), "submission.digest.",
          out, tolerance, counter)
    _walk(recorded["ground_truth"], rescored["ground_truth"], "ground_truth.", out, tolerance, counter)
    _walk(recorded["protocol"], rescored["protocol"], "protocol.", out, tolerance, counter)
    _walk(recorded["categories"], rescored["categories"], "categories.", out, tolerance, counter)
    _walk(recorded.get("mean"), rescored.get("mean"), "mean.", out, tolerance, counter)
    if "bootstrap" in recorded or "bootstrap" in rescored:
        _walk(recorded.get("bootstrap"), rescored.get("bootstrap"), "bootstrap.", out, tolerance, counter)
    return out, counter[0]


def _recorded_root(recorded: dict[str, Any], data_root: str | os.PathLike[str] | None) -> Path:
    """``data_root`` when given, else the folder results.json records (when it still exists), else the
    default dataset folder (``$THREECAD_ROOT`` or the download folder)."""
    from threecad.paths import default_data_root

    if data_root is not None:
        return Path(data_root)
    recorded_root = (recorded.get("ground_truth") or {}).get("data_root")
    if recorded_root and Path(recorded_root).is_dir():
        return Path(recorded_root)
    return default_data_root()


def verify_results(results_path: str | os.PathLike[str], submission: str | os.PathLike[str],
                   data_root: str | os.PathLike[str] | None = None, *, label_map: Any = None,
                   workers: int | None = None, progress: bool = False, tolerance: float = 0.0) -> VerifyReport:
    """Re-score ``submission`` as ``results_path`` records and compare (see module doc).

    ``data_root`` defaults to the ground truth folder recorded in ``results_path`` (when it
    exists), else the default dataset folder. The ground truth digest is compared anyway.

    Raises
    ------
    UsageError
        ``results_path`` is not a readable results.json or records an unknown protocol.
    NoDatasetError
        No dataset at ``data_root``, nor at the recorded folder or the default one.
    SubmissionError
        The submission cannot be scored any more (its problems listed).
    """
    from threecad import __version__

    from .api import Evaluator
    from .bootstrap import DEFAULT_MAX_LEVELS, BootstrapObserver, summarize_bootstrap
    from .protocols import PROTOCOLS

    path = Path(results_path)
    recorded = _load(path)
    report = VerifyReport(str(path))
    proto = recorded["protocol"]
    name = proto.get("name") if isinstance(proto, dict) else None
    if name not in PROTOCOLS:
        raise UsageError(f"{path} records protocol {name!r}, which this threecad ({__version__}) does not know")
    if recorded.get("threecad_version") != __version__:
        report.notes.append(f"recorded with threecad {recorded.get('threecad_version')}, verified with {__version__}")
    root = _recorded_root(recorded, data_root)
    if not root.is_dir():
        raise NoDatasetError(f"no dataset at {root}; {path} was scored against "
                             f"{recorded['ground_truth'].get('data_root')!s}: give the dataset's folder")
    report.data_root = str(root)
    categories = list(recorded["categories"])
    observer = None
    boot = recorded.get("bootstrap")
    if boot:
        observer = BootstrapObserver(PROTOCOLS[name], n_resamples=int(boot["n_resamples"]), seed=int(boot["seed"]),
                                     confidence=float(boot["confidence"]),
                                     max_levels=int(boot.get("max_levels") or DEFAULT_MAX_LEVELS))
    evaluator = Evaluator(root, protocol=name, categories=categories or None, label_map=label_map, threads=workers,
                          progress=progress, per_image=False)
    rescored = evaluator.score(submission, command=recorded.get("command"), observer=observer)
    if observer is not None:
        rescored.bootstrap = summarize_bootstrap(observer.result(), rescored.to_dict())
    report.differences, report.n_values = compare_results(recorded, json.loads(rescored.to_json()),
                                                          tolerance=tolerance)
    return report
