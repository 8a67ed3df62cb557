"""The validation report: problems, summary, closest pairs; as JSON or as a readable table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_DATA, EXIT_OK, Problem, ProblemsView, Severity
from .duplicates import ClosePair

__all__ = ["ValidationReport", "render_table", "sort_problems"]

TABLE_LIMIT_PER_KIND = 25
TABLE_CLOSEST = 5


_FIRST = ("leakage", "near_leakage")


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Errors first, leakage first inside each severity, then by kind and path."""
    return sorted(problems, key=lambda p: (p.severity is not Severity.ERROR, p.kind not in _FIRST,
                                           p.kind, str(p.path)))


@dataclass
class ValidationReport(ProblemsView):
    """Everything ``validate`` found.

    Attributes
    ----------
    root : Path
        The tree checked.
    problems : list of Problem
        Every problem, errors first, grouped by kind.
    summary : dict
        Counts (``errors``, ``warnings``, ``images``, ``masks``, ``by_kind`` ...) and how the
        checks ran.
    closest_pairs : list of ClosePair
        The smallest perceptual-hash distances between images of one category (byte-identical
        pairs left out), closest first; empty when near-duplicates were not looked for.
    checks : list of str
        Names of the checks that ran.
    download_record : dict or None
        The ``.threecad-download.json`` record of the tree, when there is one.
    notes : list of str
        Information lines (where the tree came from, what was compared and why).
    """

    root: Path
    problems: list[Problem]
    summary: dict[str, object]
    closest_pairs: list[ClosePair] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    download_record: dict[str, object] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def exit_code(self) -> int:
        """0 without errors, 1 with errors."""
        return EXIT_OK if self.ok else EXIT_DATA

    def to_dict(self) -> dict[str, object]:
        """The report as plain values: ``root``, ``summary``, ``problems``, ``checks``,
        ``closest_pairs``, ``download_record``, ``notes``."""
        return {
            "root": str(self.root),
            "summary": self.summary,
            "problems": [p.to_dict() for p in self.problems],
            "checks": list(self.checks),
            "closest_pairs": [c.to_dict() for c in self.closest_pairs],
            "download_record": self.download_record,
            "notes": list(self.notes),
        }


def _rel(path: Path | str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def render_table(report: ValidationReport, *, limit_per_kind: int = TABLE_LIMIT_PER_KIND,
                 closest: int = TABLE_CLOSEST) -> str:
    """The report as readable text: summary, a count per kind, the paths per kind, closest pairs.

    Paths are relative to the root. At most ``limit_per_kind`` paths are listed per kind
    (the JSON form lists all of them).
    """
    s = report.summary
    root = report.root
    lines = [f"3CAD validation of {root}"]
    for note in report.notes:
        lines.append(f"  {note}")
    lines.append(f"  checks: {', '.join(report.checks)}")
    lines.append("")

    n_err, n_warn = len(report.errors), len(report.warnings)
    if report.problems:
        leaks = sum(1 for p in report.problems if p.kind == "leakage")
        if leaks:
            lines.append(f"!! TRAIN/TEST LEAKAGE: {leaks} test image{'s are' if leaks != 1 else ' is'} "
                         f"byte-identical to train images of the same category !!")
            lines.append("")
        lines.append(f"Problems: {n_err} error{'s' if n_err != 1 else ''}, "
                     f"{n_warn} warning{'s' if n_warn != 1 else ''}")
        groups: dict[tuple[str, str], list[Problem]] = {}
        for p in report.problems:
            groups.setdefault((p.severity.value, p.kind), []).append(p)
        width = max(len(k) for _, k in groups)
        lines.append(f"  {'severity':8}  {'kind':{width}}  count")
        for (sev, kind), items in groups.items():
            lines.append(f"  {sev:8}  {kind:{width}}  {len(items):5d}")
        for (sev, kind), items in groups.items():
            lines.append("")
            loud = "  <-- TRAIN/TEST LEAKAGE" if kind == "leakage" else ""
            lines.append(f"{sev} {kind} ({len(items)}):{loud}")
            for p in items[:limit_per_kind]:
                lines.append(f"    {_rel(p.path, root)}: {p.message}")
            if len(items) > limit_per_kind:
                lines.append(f"    ... and {len(items) - limit_per_kind} more (--json lists all)")
    else:
        lines.append("Problems: none")

    nd = s.get("near_duplicates")
    if isinstance(nd, dict) and report.closest_pairs:
        lines.append("")
        lines.append(f"Closest image pairs (perceptual-hash distance of {nd['hash_bits']} bits; "
                     f"verdict from the aligned pixels):")
        for c in report.closest_pairs[:closest]:
            lines.append(f"  {c.distance:4d}  {c.verdict:8}  {_rel(c.a.path, root)}  <->  {_rel(c.b.path, root)}"
                         f"  ({c.relation})")
    lines.append("")
    if n_err:
        lines.append(f"Result: FAILED, {n_err} error{'s' if n_err != 1 else ''}, "
                     f"{n_warn} warning{'s' if n_warn != 1 else ''}")
    elif n_warn:
        lines.append(f"Result: OK, no errors ({n_warn} warning{'s' if n_warn != 1 else ''})")
    else:
        lines.append("Result: OK, no problems found")
    return "\n".join(lines) + "\n"
