"""Leaderboards: several submissions scored on one ground truth, ranked, with uncertainty.

:func:`score_leaderboard` validates every submission first (an invalid one becomes an
``invalid`` entry with its problems; the others go on), then scores category by category:
the masks of a category are read once (:func:`eval.evaluate.category_truths`) and every
submission covering it is evaluated against them. With ``n_resamples`` each submission
gets bootstrap intervals (:mod:`eval.bootstrap`, the same resamples for all), and
``compare`` pairs give paired differences.

:func:`write_leaderboard` writes ``leaderboard.md`` (the paper's two tables, one row per
method, best value per column in bold, mean last), ``leaderboard.csv``,
``leaderboard.json`` and each method's ``results.json``/``.csv``/``.md`` in its own
folder; every file atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from threecad import __version__
from threecad.atomic import write_text_atomic
from threecad.categories import CATEGORIES
from threecad.errors import DataError, Problem, ThreecadError, UsageError, format_problems

from .bootstrap import DEFAULT_MAX_LEVELS, BOOTSTRAP_METRICS, BootstrapObserver, paired_comparison, summarize_bootstrap
from .evaluate import category_truths, evaluate_category
from .protocols import Protocol, get_protocol
from .published import PUBLISHED_SOURCE, published_rows
from .results import _clean, _pct, build_results, write_results
from .submission import Submission, SubmissionError, validate_submission

__all__ = ["Entry", "Leaderboard", "score_leaderboard", "write_leaderboard", "render_leaderboard",
           "leaderboard_csv", "leaderboard_json"]

log = logging.getLogger(__name__)

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json")
MAX_REASONS = 5


@dataclass
class Entry:
    """One submission on the leaderboard (``status`` is ``scored`` or ``invalid``)."""

    source: str
    method: str
    status: str = "scored"
    problems: list[Problem] = field(default_factory=list)
    reason: str = ""
    results: dict[str, Any] | None = None
    submission: Submission | None = None
    observer: BootstrapObserver | None = None
    slug: str = ""
    curves: dict[str, Any] = field(default_factory=dict)  # folder -> figures.CategoryCurves (keep_curves)

    def invalidate(self, reason: str, problems: Sequence[Problem] = ()) -> None:
        """Mark the entry invalid (its results are dropped)."""
        self.status = "invalid"
        self.reason = reason
        self.problems = list(problems)
        self.results = None


@dataclass
class Leaderboard:
    """Every entry, the protocol, the bootstrap settings and the paired comparisons."""

    protocol: Protocol
    entries: list[Entry]
    categories: list[str]                       # category folders scored, in the paper's order
    data_root: str
    ground_truth_sha256: str
    command: list[str]
    n_resamples: int = 0
    seed: int = 0
    confidence: float = 0.95
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    include_published: bool = False
    rank_by: str = "pixel_auroc"

    @property
    def any_invalid(self) -> bool:
        """Whether some submission was invalid."""
        return any(e.status != "scored" for e in self.entries)


def _problem_reason(exc: ThreecadError) -> tuple[str, list[Problem]]:
    problems = list(getattr(exc, "problems", []) or [])
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if problems:
        kinds: dict[str, int] = {}
        for p in problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"{len(problems)} problem(s): {summary}; first: {problems[0].path}: {problems[0].message}", problems
    return first, problems


def _slug(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "method"
    slug, i = base, 2
    while slug.lower() in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug.lower())
    return slug


def score_leaderboard(paths: Sequence[str | os.PathLike[str]], data_root: str | os.PathLike[str], *,
                      protocol_name: str = "standard", categories: Sequence[str] | None = None,
                      label_map: Any = None, workers: int | None = None, progress: bool = False,
                      command: Sequence[str] | None = None, n_resamples: int = 0, seed: int = 0,
                      confidence: float = 0.95, compare: Sequence[tuple[str, str]] = (),
                      include_published: bool = False, max_levels: int = DEFAULT_MAX_LEVELS,
                      rank_by: str = "pixel_auroc", tmp_dir: str | None = None,
                      keep_curves: bool = False) -> Leaderboard:
    """Validate and score several submissions on one ground truth (see module doc).

    Parameters
    ----------
    paths : sequence of path
        Submission folders or ``.zip`` files.
    n_resamples : int
        Bootstrap resamples (0: no intervals).
    compare : sequence of (str, str)
        Pairs of methods (names, or the paths as given) for paired comparisons; needs
        ``n_resamples``.
    rank_by : str
        The mean metric that orders the scored entries (highest first; NaN last).
    keep_curves : bool
        Keep each entry's curves per category for drawing (``Entry.curves``, see
        :func:`eval.figures.category_curves`).

    Raises
    ------
    UsageError
        No submission given, a comparison names an unknown method, bad settings.
    DataError
        The ground truth itself has problems (nothing can be scored).
    """
    import sys

    from threecad.manifest import raise_on_errors, scan

    from .archive import submission_folder

    if not paths:
        raise UsageError("give at least one submission (folder or .zip)")
    if rank_by not in BOOTSTRAP_METRICS:
        raise UsageError(f"--rank-by must be one of {', '.join(BOOTSTRAP_METRICS)}, got {rank_by!r}")
    if compare and not n_resamples:
        raise UsageError("--compare needs --bootstrap N (the paired test uses the bootstrap resamples)")
    if n_resamples < 0:
        raise UsageError(f"--bootstrap needs a positive number of resamples, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"--confidence must be between 0 and 1, got {confidence}")
    protocol = get_protocol(protocol_name)
    scan_result = scan(data_root, label_map=label_map)
    raise_on_errors(scan_result.errors, f"the ground truth at {scan_result.root} has problems")
    manifest = scan_result.manifest
    workers = max(1, workers or os.cpu_count() or 1)

    entries: list[Entry] = []
    with ExitStack() as stack:
        # 1. validate every submission (structure; contents too when the structure fails)
        for path in paths:
            entry = Entry(source=str(path), method=Path(path).name.removesuffix(".zip"))
            entries.append(entry)
            try:
                folder = stack.enter_context(submission_folder(path, tmp_dir=tmp_dir))
                entry.submission = validate_submission(folder, manifest, categories=categories, workers=workers)
                entry.method = entry.submission.meta.method
            except ThreecadError as exc:
                entry.invalidate(*_problem_reason(exc))
                log.warning("%s: invalid submission: %s", path, entry.reason)
                continue
            if n_resamples:
                entry.observer = BootstrapObserver(protocol, n_resamples=n_resamples, seed=seed,
                                                   confidence=confidence, max_levels=max_levels)

        used: set[str] = set()
        for e in entries:
            e.slug = _slug(e.method, used)
        pairs = [(_find_entry(entries, a), _find_entry(entries, b)) for a, b in compare]  # fail early
        valid = [e for e in entries if e.status == "scored"]
        scored_folders = [c.folder for c in CATEGORIES
                          if any(c.folder in e.submission.categories for e in valid)]
        evaluations: dict[int, list] = {id(e): [] for e in valid}
        test = manifest[manifest["split"] == "test"]
        # 2. score category by category; the masks are read once for every submission
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for folder in scored_folders:
                users = [e for e in valid if e.status == "scored" and folder in e.submission.categories]
                if not users:
                    continue
                rows = test[test["category"] == folder].to_dict("records")
                truths = category_truths(rows, protocol, pool)
                bad = [t.problem for t in truths if t.problem is not None]
                if bad:
                    raise DataError(f"the ground truth of {folder} has problems; nothing was scored\n"
                                    + format_problems(bad), bad)
                for e in users:
                    ev, problems = evaluate_category(e.submission, folder, rows, protocol, pool, workers=workers,
                                                     truths=truths, observer=e.observer, progress=progress)
                    if problems:
                        e.invalidate(*_problem_reason(SubmissionError(
                            f"submission {e.submission.root} has problems", problems)))
                        log.warning("%s: invalid submission: %s", e.source, e.reason)
                        continue
                    evaluations[id(e)].append(ev)
                    if keep_curves:
                        from .figures import category_curves

                        e.curves[folder] = category_curves(ev, fpr_limit=protocol.fpr_limit)
        # 3. results records (digests of the files, while zipped submissions are still extracted)
        cmd = list(command) if command is not None else list(sys.argv)
        for e in entries:
            if e.status != "scored":
                continue
            e.results = build_results(e.submission, evaluations[id(e)], protocol, data_root=scan_result.root,
                                      command=cmd)
            if e.observer is not None:
                e.results["bootstrap"] = summarize_bootstrap(e.observer.result(), e.results)
    gt = {e.results["ground_truth"]["sha256"] for e in entries if e.results}
    entries = _ranked(entries, rank_by)
    board = Leaderboard(protocol=protocol, entries=entries, rank_by=rank_by, categories=scored_folders,
                        data_root=str(scan_result.root), ground_truth_sha256=gt.pop() if len(gt) == 1 else "",
                        command=cmd, n_resamples=n_resamples, seed=seed, confidence=confidence,
                        include_published=include_published)
    for ea, eb in pairs:
        board.comparisons.append(_compare(ea, eb))
    return board


def _ranked(entries: list[Entry], metric: str) -> list[Entry]:
    """Scored entries by their mean ``metric`` (highest first, NaN last, ties by name), then invalid ones."""
    def key(e: Entry):
        v = e.results["mean"].get(metric)
        v = float("nan") if v is None else float(v)
        return (math.isnan(v), -v if not math.isnan(v) else 0.0, e.method, e.source)

    scored = sorted((e for e in entries if e.status == "scored"), key=key)
    return scored + [e for e in entries if e.status != "scored"]


def _find_entry(entries: list[Entry], key: str) -> Entry:
    matches = [e for e in entries if key in (e.method, e.source, e.slug)] or \
              [e for e in entries if Path(e.source).resolve() == Path(key).resolve()]
    if not matches:
        names = ", ".join(repr(e.method) for e in entries)
        raise UsageError(f"--compare: no submission called {key!r} (methods: {names})")
    if len(matches) > 1:
        raise UsageError(f"--compare: {key!r} names {len(matches)} submissions; use their paths")
    return matches[0]


def _compare(ea: Entry, eb: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"a": ea.method, "b": eb.method}
    if ea.status != "scored" or eb.status != "scored":
        out["error"] = "not compared: " + " and ".join(f"{e.method} is invalid" for e in (ea, eb)
                                                         if e.status != "scored")
        return out
    out.update(paired_comparison(ea.observer.result(), eb.observer.result(), ea.results, eb.results))
    out["codes"] = {f: ea.results["categories"][f]["code"] for f in out["categories"]}
    return out


# rendering -------------------------------------------------------------------------------

def _value(results: dict[str, Any], code: str, metric: str) -> float:
    if code == "Mean":
        v = results["mean"].get(metric)
    else:
        block = next((c for c in results["categories"].values() if c["code"] == code), None)
        v = None if block is None else block.get(metric)
    return float("nan") if v is None else float(v)


def _rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Display rows: scored, invalid, then published; ``values[code][metric]`` as fractions."""
    codes = [c.code for c in CATEGORIES] + ["Mean"]
    metrics = ("pixel_auroc", "pixel_ap", "image_auroc", "aupro")
    rows = []
    for e in board.entries:
        if e.status == "scored":
            vals = {code: {m: _value(e.results, code, m) for m in metrics} for code in codes}
            rows.append({"method": e.method, "kind": "scored", "values": vals})
        else:
            rows.append({"method": e.method, "kind": "invalid", "values": {}, "reason": e.reason})
    if board.include_published:
        for p in published_rows():
            rows.append({"method": p.method, "kind": "published", "values": p.values, "family": p.family})
    return rows


def _best(rows: list[dict[str, Any]], code: str, metric: str) -> float:
    vals = [r["values"][code][metric] for r in rows if r["kind"] == "scored" and code in r["values"]]
    vals = [v for v in vals if not math.isnan(v)]
    return max(vals) if vals else float("nan")


def render_leaderboard(board: Leaderboard) -> str:
    """leaderboard.md: the paper's two tables (one row per method), intervals, comparisons."""
    codes = [c.code for c in CATEGORIES]
    rows = _rows(board)
    aupro_name = "P-PRO (authors')" if board.protocol.aupro == "paper_per_image" else "AUPRO"
    names = {"image_auroc": "I-AUROC", "image_ap": "I-AP", "pixel_auroc": "P-AUROC", "pixel_ap": "P-AP",
             "aupro": aupro_name}
    out = [f"# Leaderboard ({board.protocol.name} protocol)", "",
           f"threecad {__version__}; ground truth sha256 `{board.ground_truth_sha256 or 'n/a'}`; "
           f"{sum(e.status == 'scored' for e in board.entries)} scored, "
           f"{sum(e.status != 'scored' for e in board.entries)} invalid. Percent; best re-scored value per "
           f"column in bold; Mean is the unweighted mean over the categories a method was scored on. "
           f"Scored methods are ranked by mean {board.rank_by}.", ""]
    for title, (a, b) in (("P-AUROC/P-AP", ("pixel_auroc", "pixel_ap")),
                          (f"I-AUROC/{aupro_name}", ("image_auroc", "aupro"))):
        out.append(f"**{title}**\n")
        header = ["Method", *codes, "Mean"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for r in rows:
            if r["kind"] == "invalid":
                out.append(f"| {r['method']} (invalid) | " + " | ".join(["-"] * (len(codes) + 1)) + " |")
                continue
            cells = []
            for code in [*codes, "Mean"]:
                v = r["values"].get(code)
                if v is None:
                    cells.append("-")
                    continue
                parts = []
                for m in (a, b):
                    text = _pct(v[m])
                    best = _best(rows, code, m)
                    if r["kind"] == "scored" and not math.isnan(v[m]) and _pct(v[m]) == _pct(best):
                        text = f"**{text}**"
                    parts.append(text)
                cells.append("/".join(parts))
            name = r["method"] + (" (published, not re-scored)" if r["kind"] == "published" else "")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    if board.include_published:
        out.append(f"Published rows: {PUBLISHED_SOURCE}. They are not comparable number for number with "
                   f"rows scored under the `{board.protocol.name}` protocol unless it is `paper`.\n")
    invalid = [e for e in board.entries if e.status != "scored"]
    if invalid:
        out.append("## Invalid submissions\n")
        for e in invalid:
            out.append(f"- **{e.method}** (`{e.source}`): {e.reason}")
            for p in e.problems[:MAX_REASONS]:
                out.append(f"  - {p.kind}: `{p.path}`: {p.message}")
            if len(e.problems) > MAX_REASONS:
                out.append(f"  - ... and {len(e.problems) - MAX_REASONS} more")
        out.append("")
    if board.n_resamples:
        out.append(f"## {100 * board.confidence:g}% bootstrap intervals\n")
        out.append(f"{board.n_resamples} resamples (seed {board.seed}), test images resampled within each "
                   f"category, good and defective separately; percentile intervals.\n")
        for e in board.entries:
            if e.status != "scored":
                continue
            boot = e.results["bootstrap"]
            out.append(f"**{e.method}**\n")
            out.append("| Category | " + " | ".join(names[m] for m in BOOTSTRAP_METRICS) + " | pixel metrics |")
            out.append("|---|" + "---:|" * len(BOOTSTRAP_METRICS) + "---|")
            for folder, cb in boot["categories"].items():
                code = e.results["categories"][folder]["code"]
                cells = [f"{_pct(e.results['categories'][folder][m])} [{_pct(cb[m]['low'])}, {_pct(cb[m]['high'])}]"
                         for m in BOOTSTRAP_METRICS]
                how = "exact" if cb["pixel_metrics"] == "exact" else \
                    f"binned ({cb['levels']} levels; max point error {max_err(cb):.1e})"
                out.append(f"| {code} | " + " | ".join(cells) + f" | {how} |")
            cells = [f"{_pct(e.results['mean'][m])} [{_pct(boot['mean'][m]['low'])}, {_pct(boot['mean'][m]['high'])}]"
                     for m in BOOTSTRAP_METRICS]
            out.append("| Mean | " + " | ".join(cells) + " | |\n")
    for c in board.comparisons:
        out.append(f"## Paired comparison: {c['a']} - {c['b']}\n")
        if "error" in c:
            out.append(c["error"] + "\n")
            continue
        out.append(f"Differences in percentage points, {100 * board.confidence:g}% paired bootstrap interval "
                   f"(same resamples for both); * = the interval excludes zero.\n")
        out.append("| Category | " + " | ".join(names[m] for m in BOOTSTRAP_METRICS) + " |")
        out.append("|---|" + "---:|" * len(BOOTSTRAP_METRICS))
        codes = c.get("codes", {})
        for label, block in [*((codes.get(k, k), v) for k, v in c["categories"].items()), ("Mean", c["mean"])]:
            cells = []
            for m in BOOTSTRAP_METRICS:
                d = block[m]
                star = "*" if d["excludes_zero"] else ""
                cells.append(f"{_signed(d['difference'])} [{_signed(d['low'])}, {_signed(d['high'])}]{star}")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def max_err(block: dict[str, Any]) -> float:
    """Largest measured point error of the binned pixel metrics of one category block."""
    errs = [block[m]["point_error"] for m in ("pixel_auroc", "pixel_ap", "aupro")]
    errs = [e for e in errs if e is not None and not math.isnan(e)]
    return max(errs) if errs else 0.0


def _signed(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:+.1f}"


def leaderboard_csv(board: Leaderboard) -> str:
    """One row per (method, category, metric): value and interval (blank when none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "status", "source", "category", "metric", "value", "low", "high"])
    for e in board.entries:
        if e.status != "scored":
            w.writerow([e.method, "invalid", e.source, "", "", "", "", ""])
            continue
        boot = e.results.get("bootstrap")
        blocks = [(c["code"], folder, c) for folder, c in e.results["categories"].items()]
        blocks.append(("Mean", None, e.results["mean"]))
        for code, folder, block in blocks:
            for m in BOOTSTRAP_METRICS:
                v = block.get(m)
                lo = hi = ""
                if boot:
                    iv = boot["categories"][folder][m] if folder else boot["mean"][m]
                    lo, hi = _num(iv["low"]), _num(iv["high"])
                w.writerow([e.method, "scored", e.source, code, m, _num(v), lo, hi])
    if board.include_published:
        for p in published_rows():
            for code, vals in p.values.items():
                for m, v in vals.items():
                    w.writerow([p.method, "published", PUBLISHED_SOURCE, code, m, _num(v), "", ""])
    return buf.getvalue()


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def leaderboard_json(board: Leaderboard) -> str:
    """leaderboard.json: settings, entries (with their results and intervals), comparisons."""
    entries = []
    for e in board.entries:
        item: dict[str, Any] = {"rank": (board.entries.index(e) + 1) if e.status == "scored" else None,
                                "method": e.method, "source": e.source, "status": e.status,
                                "results_file": f"{e.slug}/results.json" if e.status == "scored" else None}
        if e.status == "scored":
            item["submission_digest"] = e.results["submission"]["digest"]
            item["categories"] = {c["code"]: {m: c[m] for m in BOOTSTRAP_METRICS}
                                  for c in e.results["categories"].values()}
            item["mean"] = {m: e.results["mean"][m] for m in BOOTSTRAP_METRICS}
            if "bootstrap" in e.results:
                item["bootstrap"] = e.results["bootstrap"]
        else:
            item["reason"] = e.reason
            item["problems"] = [p.to_dict() for p in e.problems]
        entries.append(item)
    obj: dict[str, Any] = {
        "threecad_version": __version__,
        "protocol": board.protocol.to_dict(),
        "ground_truth": {"sha256": board.ground_truth_sha256, "data_root": board.data_root},
        "command": board.command,
        "rank_by": board.rank_by,
        "bootstrap": ({"n_resamples": board.n_resamples, "seed": board.seed, "confidence": board.confidence}
                      if board.n_resamples else None),
        "entries": entries,
        "comparisons": board.comparisons,
    }
    if board.include_published:
        obj["published"] = {"source": PUBLISHED_SOURCE, "note": "not re-scored",
                            "rows": [{"method": p.method, "family": p.family, "values": p.values}
                                     for p in published_rows()]}
    return json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n"


def write_leaderboard(board: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the leaderboard files and each scored method's results files (atomically)."""
    out = Path(out_dir)
    texts = {"leaderboard.md": render_leaderboard(board), "leaderboard.csv": leaderboard_csv(board),
             "leaderboard.json": leaderboard_json(board)}
    paths = []
    for e in board.entries:
        if e.status == "scored":
            paths += write_results(e.results, out / e.slug)
    for name in LEADERBOARD_FILES:
        write_text_atomic(out / name, texts[name])
        paths.append(out / name)
    return paths
