"""Leaderboards: several submissions scored on one ground truth, ranked, with uncertainty.

:func:`score_leaderboard` validates every submission first (an invalid one becomes an
``invalid`` entry with its problems; the others go on), then scores category by category:
the masks of a category are read once (:func:`eval.evaluate.category_truths`) and every
submission covering it is evaluated against them. With ``n_resamples`` each submission
gets bootstrap intervals (:mod:`eval.bootstrap`, the same resamples for all), and
``compare`` pairs give paired differences.

An entry is named after its path: the folder's name, or the ``.zip``'s name without
``.zip``; the method named in its submission.json is shown beside it. Comparisons and the
board's folders use that name.

:func:`write_leaderboard` writes ``leaderboard.md`` (the paper's two tables, one row per
entry, best value per column in bold, mean last), ``leaderboard.csv``,
``leaderboard.json`` and each entry's results files in its own folder, the whole set
published with one rename.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Sequence

from threecad import __version__
from threecad.categories import CATEGORIES
from threecad.errors import DataError, Problem, ThreecadError, UsageError, format_problems

from .api import Evaluator, ImageTableObserver, ObserverGroup
from .bootstrap import DEFAULT_MAX_LEVELS, BootstrapObserver, paired_comparison, summarize_bootstrap
from .evaluate import CategoryEvaluation, category_truths, evaluate_category
from .metric_names import METRICS, PIXEL_METRICS, Metric, display_name
from .format import safe_cell, safe_file_name, shown
from .protocols import Protocol
from .published import PUBLISHED_SOURCE, published_rows
from .results import (PaperRow, Results, Table, _clean, check_output_folder,
                      paper_tables, paper_values, pct, results_csv, write_result_set)
from .submission import Submission, SubmissionError

__all__ = ["Entry", "EntryStatus", "Leaderboard", "score_leaderboard", "write_leaderboard", "render_leaderboard",
           "leaderboard_tables", "leaderboard_csv", "leaderboard_json", "entry_name"]

log = logging.getLogger(__name__)

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json")
MAX_REASONS = 5
# What one team's submission may raise while it is opened or scored: it makes that entry an
# invalid row, never stops the board (a reader that fails without naming its problem included).
_ENTRY_ERRORS = (ThreecadError, OSError, ValueError, RecursionError, MemoryError)


class EntryStatus(StrEnum):
    """Whether a submission was scored."""

    SCORED = "scored"
    INVALID = "invalid"


def entry_name(path: str | os.PathLike[str]) -> str:
    """The name of a submission on a board: its folder's name, or its zip's name without ``.zip``."""
    name = Path(path).name or Path(path).resolve().name   # "." or "a/.." name their folder
    return name[:-4] if name.lower().endswith(".zip") else name


@dataclass
class Entry:
    """One submission on the leaderboard.

    ``name`` comes from the path (:func:`entry_name`), ``method`` from its submission.json
    (the name until it is read).
    """

    source: str
    name: str
    method: str = ""
    status: EntryStatus = EntryStatus.SCORED
    problems: list[Problem] = field(default_factory=list)
    reason: str = ""
    results: Results | None = None
    submission: Submission | None = None
    observer: BootstrapObserver | None = None
    table: ImageTableObserver | None = None
    slug: str = ""
    curves: dict[str, Any] = field(default_factory=dict)  # folder -> figures.CategoryCurves (keep_curves)

    def __post_init__(self) -> None:
        self.method = self.method or self.name

    @property
    def scored(self) -> bool:
        """Whether the entry was scored."""
        return self.status is EntryStatus.SCORED

    @property
    def label(self) -> str:
        """``name``, with the method beside it when submission.json names another one."""
        name, method = safe_cell(self.name), safe_cell(self.method)
        return name if method == name else f"{name} ({method})"

    def invalidate(self, reason: str, problems: Sequence[Problem] = ()) -> None:
        """Mark the entry invalid (its results are dropped)."""
        self.status = EntryStatus.INVALID
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
    rank_by: Metric = Metric.PIXEL_AUROC

    @property
    def any_invalid(self) -> bool:
        """Whether some submission was invalid."""
        return any(not e.scored for e in self.entries)


def _problem_reason(exc: Exception) -> tuple[str, list[Problem]]:
    from .archive import relabel_problems

    problems = relabel_problems(getattr(exc, "problems", []) or [])
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not isinstance(exc, ThreecadError):  # a reader failed in a way it should have named: still one row
        first = f"cannot be read ({type(exc).__name__}: {first[:200]})"
    if problems:
        kinds: dict[str, int] = {}
        for p in problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"{len(problems)} problem(s): {summary}; first: {problems[0].path}: {problems[0].message}", problems
    return first, problems


def _slug(name: str, used: set[str]) -> str:
    """A folder name for an entry: safe characters, at most 80, unique (case-insensitively) on the board."""
    base = safe_file_name(name)
    if base.lower() in LEADERBOARD_FILES:
        base = f"{base}-entry"
    slug, i = base, 2
    while slug.lower() in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug.lower())
    return slug


def _check_settings(paths: Sequence[Any], rank_by: str, compare: Sequence[Any], n_resamples: int,
                    confidence: float) -> Metric:
    """The ranking metric; :class:`UsageError` for settings that cannot work."""
    if not paths:
        raise UsageError("give at least one submission (folder or .zip)")
    try:
        metric = Metric(rank_by)
    except ValueError:
        raise UsageError(f"rank_by must be one of {', '.join(METRICS)}, got {rank_by!r}") from None
    if n_resamples < 0:
        raise UsageError(f"the number of bootstrap resamples must be positive, got {n_resamples}")
    if compare and not n_resamples:
        raise UsageError("paired comparisons need bootstrap resamples (n_resamples > 0; the paired test "
                         "uses them)")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"the confidence level must be between 0 and 1, got {confidence}")
    return metric


def _open_entries(paths: Sequence[Any], evaluator: Evaluator, stack: ExitStack, tmp_dir: str | None,
                  make_observer) -> list[Entry]:
    """Step 1: an entry per path, its submission extracted (zip) and validated; invalid ones marked."""
    from .archive import submission_folder

    entries: list[Entry] = []
    used: set[str] = set()
    for path in paths:
        entry = Entry(source=str(path), name=entry_name(path))
        entry.slug = _slug(entry.name, used)
        entries.append(entry)
        try:
            folder = stack.enter_context(submission_folder(path, tmp_dir=tmp_dir))
            entry.submission = evaluator.validate(folder)
            entry.method = entry.submission.meta.method or entry.name
        except _ENTRY_ERRORS as exc:  # one bad submission is one invalid row; the others are still scored
            entry.invalidate(*_problem_reason(exc))
            log.warning("%s: invalid submission: %s", shown(path), shown(entry.reason))
            continue
        entry.observer = make_observer()
        entry.table = ImageTableObserver(evaluator.protocol)
    return entries


def _score_categories(entries: list[Entry], evaluator: Evaluator, scored_folders: list[str], workers: int,
                      progress: bool, keep_curves: bool = False) -> dict[int, list[CategoryEvaluation]]:
    """Step 2: category by category, the masks read once, every valid entry scored against them."""
    protocol = evaluator.protocol
    manifest = evaluator.manifest
    test = manifest[manifest["split"] == "test"]
    evaluations: dict[int, list[CategoryEvaluation]] = {id(e): [] for e in entries if e.scored}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for folder in scored_folders:
            users = [e for e in entries if e.scored and folder in e.submission.categories]
            if not users:
                continue
            rows = test[test["category"] == folder].to_dict("records")
            truths = category_truths(rows, protocol, pool)
            bad = [t.problem for t in truths if t.problem is not None]
            if bad:
                raise DataError(f"the ground truth of {folder} has problems; nothing was scored\n"
                                + format_problems(bad), bad)
            for e in users:
                try:
                    ev, problems = evaluate_category(e.submission, folder, rows, protocol, pool, workers=workers,
                                                     truths=truths, observer=ObserverGroup(e.table, e.observer),
                                                     progress=progress)
                except _ENTRY_ERRORS as exc:  # e.g. a map replaced after validation
                    e.invalidate(*_problem_reason(exc))
                    log.warning("%s: invalid submission: %s", shown(e.source), shown(e.reason))
                    continue
                if problems:
                    e.invalidate(*_problem_reason(SubmissionError(
                        f"submission {e.submission.root} has problems", problems)))
                    log.warning("%s: invalid submission: %s", shown(e.source), shown(e.reason))
                    continue
                evaluations[id(e)].append(ev)
                if keep_curves:
                    from .figures import category_curves

                    e.curves[folder] = category_curves(ev, fpr_limit=protocol.fpr_limit)
    return evaluations


def _build_results(entries: list[Entry], evaluations: dict[int, list[CategoryEvaluation]], evaluator: Evaluator,
                   command: list[str]) -> None:
    """Step 3: each scored entry's results (digests read while zipped submissions are still extracted)."""
    for e in entries:
        if not e.scored:
            continue
        e.results = Results.build(e.submission, evaluations[id(e)], evaluator.protocol,
                                  data_root=evaluator.ground_truth.root, command=command,
                                  extras=e.table.extras if e.table is not None else None)
        if e.observer is not None:
            e.results.bootstrap = summarize_bootstrap(e.observer.result(), e.results.to_dict())


def score_leaderboard(paths: Sequence[str | os.PathLike[str]], data_root: str | os.PathLike[str], *,
                      protocol_name: str = "standard", categories: Sequence[str] | None = None,
                      label_map: Any = None, workers: int | None = None, progress: bool = False,
                      command: Sequence[str] | None = None, n_resamples: int = 0, seed: int = 0,
                      confidence: float = 0.95, compare: Sequence[tuple[str, str]] = (),
                      include_published: bool = False, max_levels: int = DEFAULT_MAX_LEVELS,
                      rank_by: Metric | str = Metric.PIXEL_AUROC, tmp_dir: str | None = None,
                      keep_curves: bool = False) -> Leaderboard:
    """Validate and score several submissions on one ground truth (see module doc).

    Parameters
    ----------
    paths : sequence of path
        Submission folders or ``.zip`` files.
    n_resamples : int
        Bootstrap resamples (0: no intervals).
    compare : sequence of (str, str)
        Pairs of entries (names, methods or the paths as given) for paired comparisons;
        needs ``n_resamples``.
    rank_by : Metric or str
        The mean metric that orders the scored entries (highest first; NaN last).
    keep_curves : bool
        Keep each entry's curves per category for drawing (``Entry.curves``, see
        :func:`eval.figures.category_curves`).

    Raises
    ------
    UsageError
        No submission given, a comparison names an unknown entry, bad settings.
    DataError
        The ground truth itself has problems (nothing can be scored).
    """
    metric = _check_settings(paths, str(rank_by), compare, n_resamples, confidence)
    workers = max(1, workers or os.cpu_count() or 1)
    evaluator = Evaluator(data_root, protocol=protocol_name, categories=categories, label_map=label_map,
                          threads=workers)
    evaluator.ground_truth  # scan now: a broken tree stops the board before any submission is opened
    protocol = evaluator.protocol
    cmd = list(command) if command is not None else list(sys.argv)

    def make_observer() -> BootstrapObserver | None:
        return BootstrapObserver(protocol, n_resamples=n_resamples, seed=seed, confidence=confidence,
                                 max_levels=max_levels) if n_resamples else None

    with ExitStack() as stack:
        entries = _open_entries(paths, evaluator, stack, tmp_dir, make_observer)
        pairs = [(_find_entry(entries, a), _find_entry(entries, b)) for a, b in compare]  # fail early
        scored_folders = [c.folder for c in CATEGORIES
                          if any(c.folder in e.submission.categories for e in entries if e.scored)]
        evaluations = _score_categories(entries, evaluator, scored_folders, workers, progress, keep_curves)
        _build_results(entries, evaluations, evaluator, cmd)
    gt = {e.results.ground_truth_sha256 for e in entries if e.results is not None}
    board = Leaderboard(protocol=protocol, entries=_ranked(entries, metric), rank_by=metric,
                        categories=scored_folders, data_root=str(evaluator.ground_truth.root),
                        ground_truth_sha256=gt.pop() if len(gt) == 1 else "", command=cmd,
                        n_resamples=n_resamples, seed=seed, confidence=confidence,
                        include_published=include_published)
    board.comparisons = [_compare(ea, eb) for ea, eb in pairs]
    return board


def _ranked(entries: list[Entry], metric: Metric) -> list[Entry]:
    """Scored entries by their mean ``metric`` (highest first, NaN last, ties by name), then invalid ones."""
    def key(e: Entry):
        v = e.results.metric(metric)
        return (math.isnan(v), -v if not math.isnan(v) else 0.0, e.name, e.source)

    scored = sorted((e for e in entries if e.scored), key=key)
    return scored + [e for e in entries if not e.scored]


def _find_entry(entries: list[Entry], key: str) -> Entry:
    """The entry ``key`` names: by name, slug or path as given, else by method, else by resolved path."""
    matches = [e for e in entries if key in (e.name, e.source, e.slug)] or \
              [e for e in entries if key == e.method] or \
              [e for e in entries if Path(e.source).resolve() == Path(key).resolve()]
    if not matches:
        names = ", ".join(repr(e.name) for e in entries)
        raise UsageError(f"cannot compare: no submission called {key!r} (submissions: {names})")
    if len(matches) > 1:
        raise UsageError(f"cannot compare: {key!r} names {len(matches)} submissions; use their paths")
    return matches[0]


def _compare(ea: Entry, eb: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"a": ea.name, "b": eb.name}
    if not (ea.scored and eb.scored):
        out["error"] = "not compared: " + " and ".join(f"{e.name} is invalid" for e in (ea, eb) if not e.scored)
        return out
    out.update(paired_comparison(ea.observer.result(), eb.observer.result(), ea.results.to_dict(),
                                 eb.results.to_dict()))
    out["codes"] = {f: ea.results.categories[f].code for f in out["categories"]}
    return out


# rendering -------------------------------------------------------------------------------

def _paper_rows(board: Leaderboard) -> list[PaperRow]:
    """Rows of the paper's tables: scored, invalid, then published."""
    rows = [PaperRow(e.label, paper_values(e.results)) if e.scored else PaperRow(e.label, {}, "invalid")
            for e in board.entries]
    if board.include_published:
        rows += [PaperRow(p.method, p.values, "published") for p in published_rows()]
    return rows


def _interval_tables(board: Leaderboard) -> list[Table]:
    aupro = board.protocol.aupro
    header = ["Category", *(display_name(m, aupro) for m in METRICS), "pixel metrics"]
    tables = []
    for e in board.entries:
        if not e.scored:
            continue
        boot, res = e.results.bootstrap, e.results
        rows = []
        for folder, cb in boot["categories"].items():
            cells = [f"{pct(res.categories[folder][m])} [{pct(cb[m]['low'])}, {pct(cb[m]['high'])}]" for m in METRICS]
            how = "exact" if cb["pixel_metrics"] == "exact" else \
                f"binned ({cb['levels']} levels; max point error {max_err(cb):.1e})"
            rows.append([res.categories[folder].code, *cells, how])
        rows.append(["Mean", *(f"{pct(res.metric(m))} [{pct(boot['mean'][m]['low'])}, {pct(boot['mean'][m]['high'])}]"
                               for m in METRICS), ""])
        tables.append(Table(f"{e.label}: {100 * board.confidence:g}% bootstrap intervals (percent)", header, rows))
    return tables


def _comparison_table(board: Leaderboard, c: dict[str, Any]) -> Table:
    aupro = board.protocol.aupro
    rows = []
    codes = c.get("codes", {})
    for label, block in [*((codes.get(k, k), v) for k, v in c["categories"].items()), ("Mean", c["mean"])]:
        cells = [f"{_signed(block[m]['difference'])} [{_signed(block[m]['low'])}, {_signed(block[m]['high'])}]"
                 + ("*" if block[m]["excludes_zero"] else "") for m in METRICS]
        rows.append([label, *cells])
    return Table(f"Paired comparison: {c['a']} - {c['b']}", ["Category", *(display_name(m, aupro) for m in METRICS)],
                 rows, [f"Differences in percentage points, {100 * board.confidence:g}% paired bootstrap interval "
                        f"(same resamples for both); * = the interval excludes zero."])


def leaderboard_tables(board: Leaderboard) -> list[Table]:
    """Every table of the board: the paper's two, then intervals and paired comparisons."""
    tables = paper_tables(_paper_rows(board), protocol_name=board.protocol.name, aupro=board.protocol.aupro,
                          bold_best=True)
    if board.n_resamples:
        tables += _interval_tables(board)
    tables += [_comparison_table(board, c) for c in board.comparisons if "error" not in c]
    return tables


def _intro(board: Leaderboard) -> str:
    n_ok = sum(e.scored for e in board.entries)
    return (f"threecad {__version__}; ground truth sha256 {board.ground_truth_sha256 or 'n/a'}; "
            f"{n_ok} scored, {len(board.entries) - n_ok} invalid. Percent; best re-scored value per column "
            f"marked; Mean is the unweighted mean over the categories an entry was scored on. Entries are named "
            f"after their folder or zip (the method of submission.json in brackets when it differs) and ranked "
            f"by mean {board.rank_by.value}.")


def _invalid_lines(board: Leaderboard, markdown: bool) -> list[str]:
    out = []
    for e in board.entries:
        if e.scored:
            continue
        name, source, reason = safe_cell(e.name), safe_cell(e.source, max_len=200), safe_cell(e.reason, max_len=400)
        out.append(f"- **{name}** (`{source}`): {reason}" if markdown else f"- {name} ({source}): {reason}")
        for p in e.problems[:MAX_REASONS]:
            path, message = shown(p.path), shown(p.message)
            out.append(f"  - {p.kind}: `{path}`: {message}" if markdown else f"  - {p.kind}: {path}: {message}")
        if len(e.problems) > MAX_REASONS:
            out.append(f"  - ... and {len(e.problems) - MAX_REASONS} more")
    return out


def render_leaderboard(board: Leaderboard, *, markdown: bool = True) -> str:
    """leaderboard.md (``markdown``) or the same as aligned text for a terminal."""
    out = [f"# Leaderboard ({board.protocol.name} protocol)" if markdown
           else f"Leaderboard ({board.protocol.name} protocol)", "", _intro(board), ""]
    tables = leaderboard_tables(board)
    for t in tables[:2]:
        out.append(t.render(markdown))
    if board.include_published:
        out.append(f"Published rows: {PUBLISHED_SOURCE}. They are not comparable number for number with rows "
                   f"scored under the {board.protocol.name} protocol unless it is paper.\n")
    invalid = _invalid_lines(board, markdown)
    if invalid:
        out += ["## Invalid submissions" if markdown else "Invalid submissions", "", *invalid, ""]
    if board.n_resamples:
        out += [f"## {100 * board.confidence:g}% bootstrap intervals" if markdown
                else f"{100 * board.confidence:g}% bootstrap intervals", "",
                f"{board.n_resamples} resamples (seed {board.seed}), test images resampled within each category, "
                f"good and defective separately; percentile intervals.", ""]
    for t in tables[2:]:
        out.append(t.render(markdown))
    for c in board.comparisons:
        if "error" in c:
            out += [f"Paired comparison: {c['a']} - {c['b']}: {c['error']}", ""]
    return "\n".join(out).rstrip() + "\n"


def max_err(block: dict[str, Any]) -> float:
    """Largest measured point error of the binned pixel metrics of one category block."""
    errs = [block[m]["point_error"] for m in PIXEL_METRICS]
    errs = [e for e in errs if e is not None and not math.isnan(e)]
    return max(errs) if errs else 0.0


def _signed(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:+.1f}"


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def leaderboard_csv(board: Leaderboard) -> str:
    """One row per (entry, category, metric): value and interval (blank when none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "status", "source", "category", "metric", "value", "low", "high", "name"])
    for e in board.entries:
        if not e.scored:
            w.writerow([e.method, "invalid", e.source, "", "", "", "", "", e.name])
            continue
        boot = e.results.bootstrap
        blocks = [(c.code, folder) for folder, c in e.results.categories.items()] + [("Mean", None)]
        for code, folder in blocks:
            for m in METRICS:
                lo = hi = ""
                if boot:
                    iv = boot["categories"][folder][m] if folder else boot["mean"][m]
                    lo, hi = _num(iv["low"]), _num(iv["high"])
                w.writerow([e.method, "scored", e.source, code, m.value, _num(e.results.metric(m, folder or "mean")),
                            lo, hi, e.name])
    if board.include_published:
        for p in published_rows():
            for code, vals in p.values.items():
                for m, v in vals.items():
                    w.writerow([p.method, "published", PUBLISHED_SOURCE, code, m, _num(v), "", "", p.method])
    return buf.getvalue()


def _entry_json(board: Leaderboard, e: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {"rank": (board.entries.index(e) + 1) if e.scored else None, "name": e.name,
                            "method": e.method, "source": e.source, "status": e.status.value,
                            "results_file": f"{e.slug}/results.json" if e.scored else None}
    if e.scored:
        item["submission_digest"] = e.results.submission_digest
        item["categories"] = {c.code: {m.value: c[m] for m in METRICS} for c in e.results.categories.values()}
        item["mean"] = {m.value: e.results.metric(m) for m in METRICS}
        if e.results.bootstrap is not None:
            item["bootstrap"] = e.results.bootstrap
    else:
        item["reason"] = e.reason
        item["problems"] = [p.to_dict() for p in e.problems]
    return item


def leaderboard_json(board: Leaderboard) -> str:
    """leaderboard.json: settings, entries (with their results and intervals), comparisons."""
    obj: dict[str, Any] = {
        "threecad_version": __version__,
        "protocol": board.protocol.to_dict(),
        "ground_truth": {"sha256": board.ground_truth_sha256, "data_root": board.data_root},
        "command": board.command,
        "rank_by": board.rank_by.value,
        "bootstrap": ({"n_resamples": board.n_resamples, "seed": board.seed, "confidence": board.confidence}
                      if board.n_resamples else None),
        "entries": [_entry_json(board, e) for e in board.entries],
        "comparisons": board.comparisons,
    }
    if board.include_published:
        obj["published"] = {"source": PUBLISHED_SOURCE, "note": "not re-scored",
                            "rows": [{"method": p.method, "family": p.family, "values": p.values}
                                     for p in published_rows()]}
    return json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n"


def write_leaderboard(board: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the leaderboard files and each scored entry's results files, published with one rename.

    ``out_dir`` must be absent or hold only an earlier board (its files and entry folders).
    """
    out = check_output_folder(out_dir, LEADERBOARD_FILES, allow_folders=True)
    texts: dict[str, str] = {}
    tables: dict[str, Results] = {}
    for e in board.entries:
        if e.scored:
            texts.update({f"{e.slug}/results.json": e.results.to_json(), f"{e.slug}/results.csv": results_csv(e.results),
                          f"{e.slug}/results.md": e.results.to_markdown()})
            tables[e.slug] = e.results
    texts.update({"leaderboard.md": render_leaderboard(board), "leaderboard.csv": leaderboard_csv(board),
                  "leaderboard.json": leaderboard_json(board)})
    return write_result_set(out, texts, image_tables=tables)

