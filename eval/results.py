"""Results records: results.json, results.csv and results.md (``shared/formats.md``).

All three are written atomically (temporary name, then rename): an interrupted run
leaves no partial file. NaN (an undefined metric) is ``null`` in JSON and empty in CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from threecad import __version__
from threecad.atomic import write_text_atomic
from threecad.categories import CATEGORIES

from .evaluate import METRICS, CategoryEvaluation, ground_truth_digest, summarize_category
from .protocols import Protocol
from .submission import Submission

__all__ = ["FORMAT_VERSION", "build_results", "write_results", "render_tables", "results_csv"]

FORMAT_VERSION = 1
RESULT_FILES = ("results.json", "results.csv", "results.md")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _submission_files(submission: Submission, evaluations: list[CategoryEvaluation]) -> dict[str, str]:
    files: dict[str, str] = {}
    for ev in evaluations:
        for r in ev.records:
            files[submission.maps[r.image_id].relative_to(submission.root).as_posix()] = r.map_sha256
    for name in ("scores.csv", "submission.json"):
        p = submission.root / name
        if p.is_file():
            files[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return dict(sorted(files.items()))


def build_results(submission: Submission, evaluations: list[CategoryEvaluation], protocol: Protocol, *,
                  data_root: str | Path, command: Sequence[str] | None = None) -> dict[str, Any]:
    """The results.json object (see ``shared/formats.md``); NaN kept as float here."""
    categories = {ev.category: summarize_category(ev, protocol) for ev in evaluations}
    mean = {m: (sum(c[m] for c in categories.values()) / len(categories) if categories else float("nan"))
            for m in METRICS}
    files = _submission_files(submission, evaluations)
    digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode()).hexdigest()
    return {
        "format_version": FORMAT_VERSION,
        "threecad_version": __version__,
        "protocol": protocol.to_dict(),
        "method": submission.meta.method,
        "team": submission.meta.team,
        "submission": {"digest": digest, "files": files},
        "ground_truth": {"sha256": ground_truth_digest(evaluations), "data_root": str(data_root)},
        "command": list(command) if command is not None else list(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "categories": categories,
        "mean": {**mean, "n_categories": len(categories)},
    }


def results_csv(results: dict[str, Any]) -> str:
    """One row per value: ``method,category,breakdown,metric,value``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "category", "breakdown", "metric", "value"])
    method = results["method"]

    def rows(category: str, breakdown: str, block: dict[str, Any]) -> None:
        for k, v in block.items():
            if isinstance(v, dict) or k == "code":
                continue
            w.writerow([method, category, breakdown, k, "" if v is None or (isinstance(v, float) and math.isnan(v))
                        else repr(v) if isinstance(v, float) else v])

    for folder, c in results["categories"].items():
        rows(folder, "all", c)
        for t, block in c["by_type"].items():
            rows(folder, f"type:{t}", block)
        for size, block in c["by_size"].items():
            rows(folder, f"size:{size}", block)
    rows("mean", "all", results["mean"])
    return buf.getvalue()


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.1f}"


def render_tables(results: dict[str, Any], *, markdown: bool = True) -> str:
    """The paper's two tables for this method (percent, one decimal)."""
    by_code = {c["code"]: c for c in results["categories"].values()}
    codes = [c.code for c in CATEGORIES]
    header = ["Method", *codes, "Mean"]
    method = results["method"]
    mean = results["mean"]

    def row(a: str, b: str) -> list[str]:
        cells = [f"{_pct(by_code[c][a])}/{_pct(by_code[c][b])}" if c in by_code else "-" for c in codes]
        return [method, *cells, f"{_pct(mean[a])}/{_pct(mean[b])}"]

    aupro_name = "P-PRO (authors')" if results["protocol"]["aupro"] == "paper_per_image" else "AUPRO"
    tables = [("P-AUROC/P-AP", row("pixel_auroc", "pixel_ap")),
              (f"I-AUROC/{aupro_name}", row("image_auroc", "aupro"))]
    out = []
    for title, r in tables:
        if markdown:
            out.append(f"**{title}** (percent; protocol `{results['protocol']['name']}`)\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            out.append("| " + " | ".join(r) + " |\n")
        else:
            widths = [max(len(h), len(c)) for h, c in zip(header, r)]
            out.append(f"{title} (percent, protocol {results['protocol']['name']})")
            out.append("  ".join(h.rjust(wd) if i else h.ljust(wd) for i, (h, wd) in enumerate(zip(header, widths))))
            out.append("  ".join(c.rjust(wd) if i else c.ljust(wd) for i, (c, wd) in enumerate(zip(r, widths))))
            out.append("")
    n = results["mean"]["n_categories"]
    if n < len(CATEGORIES):
        out.append(f"Mean over the {n} scored categories only (unweighted).")
    return "\n".join(out).rstrip() + "\n"


def results_json(results: dict[str, Any]) -> str:
    """results.json text (NaN as null, keys in a stable order)."""
    return json.dumps(_clean(results), indent=2, allow_nan=False) + "\n"


def write_results(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write results.json, results.csv and results.md into ``out_dir``, each atomically."""
    out = Path(out_dir)
    texts = {"results.json": results_json(results), "results.csv": results_csv(results),
             "results.md": f"# {results['method']}\n\n" + render_tables(results)}
    paths = []
    for name in RESULT_FILES:
        write_text_atomic(out / name, texts[name])
        paths.append(out / name)
    return paths
