"""Results records and the result files: results.json, results.csv, results.md and the per-image table.

:class:`Results` is the typed record of one scored submission (what :class:`eval.api.Evaluator`
returns): the settings, the digests, a :class:`CategoryResult` per category, the mean and the
per-image rows (:class:`ImageResult`). ``Results.to_json`` gives results.json (byte-identical
for the same input; NaN, an undefined metric, is ``null``), :func:`results_csv` one row per
value, :meth:`Results.to_markdown` the paper's two tables and the per-type and per-size
breakdowns, :meth:`Results.image_frame` the per-image table.

:func:`write_results` writes the set (results.json, .csv, .md, images.csv, images.parquet) into
a temporary folder published with one rename (:func:`threecad.atomic.atomic_folder`): a reader
sees the whole old set or the whole new one, never a mix.

The paper's two tables are built once (:func:`paper_tables`) for a single method and for the
leaderboard, and every table renders as Markdown or as aligned text (:class:`Table`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from threecad import __version__
from threecad.atomic import atomic_folder
from threecad.categories import CATEGORIES
from threecad.errors import UsageError
from threecad.hashing import bytes_sha256, file_sha256

from .format import safe_cell
from .metric_names import METRICS, Metric, display_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .evaluate import CategoryEvaluation
    from .protocols import Protocol
    from .submission import Submission

__all__ = ["FORMAT_VERSION", "RESULT_FILES", "IMAGE_TABLES", "Results", "CategoryResult", "ImageResult", "Table",
           "PaperRow", "paper_tables", "results_json", "results_csv", "render_tables", "write_results",
           "write_result_set", "check_output_folder", "build_results", "pct"]

FORMAT_VERSION = 2
"""Version of the results files. 2: the ``standard`` protocol resizes float32 (and narrower)
maps in float32 (:mod:`eval.resize`); version 1 resized every map in float64, so a value
can differ from a version 1 result in about the seventh decimal. The layout is unchanged."""
RESULT_FILES = ("results.json", "results.csv", "results.md")
IMAGE_TABLES = ("images.csv", "images.parquet")
CODES = tuple(c.code for c in CATEGORIES)
_BLOCK_KEYS = ("code", "by_type", "by_size")


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _clean(value: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if _nan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _unclean(value: Any) -> Any:
    """None -> NaN for the values of a metric block read from JSON."""
    return float("nan") if value is None else value


def pct(v: Any) -> str:
    """A fraction as percent with one decimal; ``-`` for an undefined value."""
    if v is None or _nan(v):
        return "-"
    return f"{100 * v:.1f}"


# records ---------------------------------------------------------------------------------

@dataclass
class CategoryResult:
    """The results of one category.

    ``values`` holds the metrics and counts in results.json's order (``image_auroc`` ...
    ``aupro``, ``n_images``, ``n_defective``, ``n_regions``, ``n_pixels`` ...; NaN when
    undefined); ``by_type[type]`` the same for that type's defective images plus the good
    ones; ``by_size[size]`` AUPRO and region count per region size class.
    """

    folder: str
    code: str
    values: dict[str, Any]
    by_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_size: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, metric: Metric | str) -> float:
        """The value of ``metric`` (NaN when undefined)."""
        return float(_unclean(self.values.get(str(metric))))

    def to_dict(self) -> dict[str, Any]:
        """The results.json block (NaN kept as float)."""
        return {"code": self.code, **self.values, "by_type": self.by_type, "by_size": self.by_size}

    @classmethod
    def from_dict(cls, folder: str, block: Mapping[str, Any]) -> "CategoryResult":
        """The inverse of :meth:`to_dict` (``null`` read back as NaN)."""
        def values(b: Mapping[str, Any]) -> dict[str, Any]:
            return {k: _unclean(v) for k, v in b.items() if k not in _BLOCK_KEYS}

        return cls(folder, str(block.get("code", "")), values(block),
                   {t: values(b) for t, b in (block.get("by_type") or {}).items()},
                   {s: values(b) for s, b in (block.get("by_size") or {}).items()})


@dataclass(frozen=True)
class ImageResult:
    """One row of the per-image table (see ``docs/results.md``).

    ``pro`` is the image's own PRO: under ``standard`` the MVTec AUPRO of this image alone
    (its regions, FPR over its normal pixels, up to the protocol's FPR limit); under
    ``paper`` the authors' per-image 200-threshold PRO. NaN for good images and where not
    computed (a Dask run computes neither ``pro`` under ``standard`` nor the maxima).
    """

    image_id: str
    category: str               # the category code (ACC ...)
    defect_types: tuple[str, ...]
    label: int                  # the label the image metrics used (1 = defective)
    score: float                # the image score the image metrics used
    pro: float
    max_normal_score: float     # highest score of a normal pixel on the protocol grid
    max_anomalous_score: float  # highest score of an anomalous pixel (NaN without any)
    n_anomalous_pixels: int     # on the protocol grid; -1 when not known
    n_regions: int
    height: int                 # the protocol grid of this image
    width: int
    map_file: str               # the map's path inside the submission

    #: Column order of the table.
    COLUMNS = ("image_id", "category", "defect_types", "label", "score", "pro", "max_normal_score",
               "max_anomalous_score", "n_anomalous_pixels", "n_regions", "height", "width", "map_file")


@dataclass
class Results:
    """Everything ``threecad eval`` records about one scored submission (see ``docs/results.md``)."""

    protocol: dict[str, Any]
    method: str
    team: str | None
    submission_digest: str
    files: dict[str, str]
    ground_truth_sha256: str
    data_root: str
    command: list[str]
    created: str
    categories: dict[str, CategoryResult]
    mean: dict[str, Any]
    format_version: int = FORMAT_VERSION
    threecad_version: str = __version__
    bootstrap: dict[str, Any] | None = None
    images: list[ImageResult] = field(default_factory=list)   # not part of results.json
    extra: dict[str, Any] = field(default_factory=dict)        # keys a newer writer added

    # construction --------------------------------------------------------------------
    @classmethod
    def build(cls, submission: "Submission", evaluations: "list[CategoryEvaluation]", protocol: "Protocol", *,
              data_root: str | Path, command: Sequence[str] | None = None,
              extras: Mapping[str, Mapping[str, Any]] | None = None) -> "Results":
        """The results of scored ``evaluations`` (:func:`eval.evaluate.evaluate_submission`).

        ``extras`` maps image ids to what an observer measured in pass 2 (see
        :class:`eval.api.ImageTableObserver`).
        """
        from .evaluate import ground_truth_digest, summarize_category

        categories = {ev.category: CategoryResult.from_dict(ev.category, summarize_category(ev, protocol))
                      for ev in evaluations}
        mean = {m.value: (sum(c[m] for c in categories.values()) / len(categories) if categories
                          else float("nan")) for m in METRICS}
        files = _submission_files(submission, evaluations)
        digest = bytes_sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode())
        return cls(protocol=protocol.to_dict(), method=submission.meta.method, team=submission.meta.team,
                   submission_digest=digest, files=files, ground_truth_sha256=ground_truth_digest(evaluations),
                   data_root=str(data_root), command=list(command) if command is not None else list(sys.argv),
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"), categories=categories,
                   mean={**mean, "n_categories": len(categories)},
                   images=_image_rows(submission, evaluations, extras or {}))

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Results":
        """A results object from its results.json form; :class:`ValueError` when keys are missing."""
        missing = [k for k in ("protocol", "categories", "submission", "ground_truth") if k not in obj]
        if missing:
            raise ValueError(f"not a threecad results object (missing {', '.join(missing)})")
        known = {"format_version", "threecad_version", "protocol", "method", "team", "submission", "ground_truth",
                 "command", "created", "categories", "mean", "bootstrap"}
        sub, gt = obj["submission"] or {}, obj["ground_truth"] or {}
        return cls(protocol=dict(obj["protocol"]), method=str(obj.get("method", "")), team=obj.get("team"),
                   submission_digest=str(sub.get("digest", "")), files=dict(sub.get("files") or {}),
                   ground_truth_sha256=str(gt.get("sha256", "")), data_root=str(gt.get("data_root", "")),
                   command=list(obj.get("command") or []), created=str(obj.get("created", "")),
                   categories={f: CategoryResult.from_dict(f, b) for f, b in (obj["categories"] or {}).items()},
                   mean={k: _unclean(v) for k, v in (obj.get("mean") or {}).items()},
                   format_version=int(obj.get("format_version", FORMAT_VERSION)),
                   threecad_version=str(obj.get("threecad_version", "")), bootstrap=obj.get("bootstrap"),
                   extra={k: v for k, v in obj.items() if k not in known})

    @classmethod
    def from_json(cls, text: str) -> "Results":
        """A results object from results.json text (:class:`ValueError` when it is not one)."""
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a threecad results object (not a JSON object)")
        return cls.from_dict(obj)

    # views ---------------------------------------------------------------------------
    @property
    def protocol_name(self) -> str:
        """The protocol's name (``standard`` or ``paper``)."""
        return str(self.protocol.get("name", ""))

    @property
    def n_images(self) -> int:
        """Test images scored, over every category."""
        return sum(int(c.values.get("n_images", 0)) for c in self.categories.values())

    def metric(self, metric: Metric | str, category: str = "mean") -> float:
        """``metric`` of a category (folder or code) or of the mean; NaN when undefined or absent."""
        if category == "mean":
            return float(_unclean(self.mean.get(str(Metric(metric)))))
        block = self.categories.get(category) or next((c for c in self.categories.values() if c.code == category),
                                                      None)
        return float("nan") if block is None else block[Metric(metric)]

    def to_dict(self) -> dict[str, Any]:
        """The results.json object (NaN kept as float; keys in the file's order)."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "threecad_version": self.threecad_version,
            "protocol": self.protocol,
            "method": self.method,
            "team": self.team,
            "submission": {"digest": self.submission_digest, "files": self.files},
            "ground_truth": {"sha256": self.ground_truth_sha256, "data_root": self.data_root},
            "command": self.command,
            "created": self.created,
            "categories": {f: c.to_dict() for f, c in self.categories.items()},
            "mean": self.mean,
        }
        if self.bootstrap is not None:
            out["bootstrap"] = self.bootstrap
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """results.json text (NaN as null, keys in a stable order)."""
        return json.dumps(_clean(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        """results.csv text (one row per value)."""
        return results_csv(self)

    def to_markdown(self) -> str:
        """results.md: the paper's two tables, then the per-type and per-size breakdowns."""
        out = [f"# {safe_cell(self.method, max_len=200)}", "", render_tables(self)]
        for table in breakdown_tables(self):
            out += ["", table.to_markdown().rstrip("\n")]
        return "\n".join(out).rstrip() + "\n"

    def to_text(self) -> str:
        """The paper's two tables as aligned text, for a terminal."""
        return render_tables(self, markdown=False)

    def to_frame(self) -> "pd.DataFrame":
        """One row per (category, breakdown): ``category`` (code or ``Mean``), ``folder``,
        ``breakdown`` (``all``, ``type:<t>``, ``size:<s>``), then every value as a column."""
        import pandas as pd

        rows = []
        for folder, c in self.categories.items():
            rows.append({"category": c.code, "folder": folder, "breakdown": "all", **c.values})
            rows += [{"category": c.code, "folder": folder, "breakdown": f"type:{t}", **b} for t, b in c.by_type.items()]
            rows += [{"category": c.code, "folder": folder, "breakdown": f"size:{s}", **b} for s, b in c.by_size.items()]
        rows.append({"category": "Mean", "folder": "", "breakdown": "all", **self.mean})
        return pd.DataFrame(rows)

    def image_frame(self) -> "pd.DataFrame":
        """The per-image table (columns :attr:`ImageResult.COLUMNS`)."""
        import pandas as pd

        return pd.DataFrame([[getattr(r, c) for c in ImageResult.COLUMNS] for r in self.images],
                            columns=list(ImageResult.COLUMNS))


def build_results(submission: "Submission", evaluations: "list[CategoryEvaluation]", protocol: "Protocol", *,
                  data_root: str | Path, command: Sequence[str] | None = None) -> Results:
    """:meth:`Results.build` (kept for callers of the earlier function name)."""
    return Results.build(submission, evaluations, protocol, data_root=data_root, command=command)


def _as_results(results: "Results | Mapping[str, Any]") -> Results:
    return results if isinstance(results, Results) else Results.from_dict(results)


def _submission_files(submission: "Submission", evaluations: "list[CategoryEvaluation]") -> dict[str, str]:
    files: dict[str, str] = {}
    for ev in evaluations:
        for r in ev.records:
            files[submission.maps[r.image_id].relative_to(submission.root).as_posix()] = r.map_sha256
    for name in ("scores.csv", "submission.json"):
        p = submission.root / name
        if p.is_file():
            files[name] = file_sha256(p)
    return dict(sorted(files.items()))


def _image_rows(submission: "Submission", evaluations: "list[CategoryEvaluation]",
                extras: Mapping[str, Mapping[str, Any]]) -> list[ImageResult]:
    nan = float("nan")
    rows = []
    for ev in evaluations:
        for r in ev.records:
            x = extras.get(r.image_id, {})
            rows.append(ImageResult(
                image_id=r.image_id, category=ev.code, defect_types=tuple(r.types), label=int(r.label),
                score=float(r.score), pro=float(x.get("pro", r.pro_paper)),
                max_normal_score=float(x.get("max_normal_score", nan)),
                max_anomalous_score=float(x.get("max_anomalous_score", nan)),
                n_anomalous_pixels=int(x.get("n_anomalous_pixels", -1)), n_regions=int(r.n_regions),
                height=int(r.shape[0]), width=int(r.shape[1]),
                map_file=submission.maps[r.image_id].relative_to(submission.root).as_posix()))
    return rows


# tables ----------------------------------------------------------------------------------

@dataclass
class Table:
    """A table that renders as Markdown (files) or aligned text (a terminal).

    Cell parts to emphasise are wrapped in a mark: Markdown shows them in bold, text with a
    trailing ``*``; ``mark_note`` says what they mean.
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    left: int = 1   # the first ``left`` columns are text (left-aligned); the others numbers
    mark_note: str = ""   # what an emphasised part means (said as "bold" or "*" by the renderer)

    def to_markdown(self) -> str:
        """The table as GitHub Markdown (title in bold, numbers right-aligned)."""
        out = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |",
               "|" + "|".join(["---"] * self.left + ["---:"] * (len(self.header) - self.left)) + "|"]
        out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in self.rows]
        notes = ([f"Bold: {self.mark_note}"] if self.mark_note else []) + self.notes
        out += [""] + notes if notes else []
        return "\n".join(out) + "\n"

    def to_text(self) -> str:
        """The table as aligned plain text (no Markdown marks)."""
        rows = [[_text_cell(c) for c in r] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(self.header, *rows)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) if i < self.left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        out = [self.title, line(self.header), *(line(r) for r in rows)]
        out += ([f"*: {self.mark_note}"] if self.mark_note else []) + [_text_cell(n) for n in self.notes]
        return "\n".join(out) + "\n"

    def render(self, markdown: bool) -> str:
        """:meth:`to_markdown` or :meth:`to_text`."""
        return self.to_markdown() if markdown else self.to_text()


_BOLD = "\x00"  # a part to emphasise is wrapped in this mark until rendered


def _md_cell(c: str) -> str:
    parts = c.split(_BOLD)
    return "".join(f"**{p}**" if i % 2 else p for i, p in enumerate(parts)).replace("|", "\\|")


def _text_cell(c: str) -> str:
    parts = c.split(_BOLD)
    return "".join(f"{p}*" if i % 2 else p for i, p in enumerate(parts))


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's tables: ``values[code or 'Mean'][metric]`` as fractions.

    ``kind`` is ``scored``, ``invalid`` (no values) or ``published`` (not re-scored).
    """

    name: str
    values: Mapping[str, Mapping[str, float]]
    kind: str = "scored"


def paper_tables(rows: Sequence[PaperRow], *, protocol_name: str, aupro: str, bold_best: bool = False) -> list[Table]:
    """The paper's two tables (``P-AUROC/P-AP`` and ``I-AUROC/AUPRO`` per category and mean, percent).

    With ``bold_best``, the best scored value of each column is emphasised.
    """
    cols = [*CODES, "Mean"]
    tables = []
    for a, b in ((Metric.PIXEL_AUROC, Metric.PIXEL_AP), (Metric.IMAGE_AUROC, Metric.AUPRO)):
        best = {(c, m): _best(rows, c, m) for c in cols for m in (a, b)} if bold_best else {}
        body = []
        for r in rows:
            if r.kind == "invalid":
                body.append([f"{r.name} (invalid)", *["-"] * len(cols)])
                continue
            cells = []
            for c in cols:
                v = r.values.get(c)
                if v is None:
                    cells.append("-")
                    continue
                parts = []
                for m in (a, b):
                    text = pct(v.get(m))
                    if r.kind == "scored" and text != "-" and text == best.get((c, m)):
                        text = f"{_BOLD}{text}{_BOLD}"
                    parts.append(text)
                cells.append("/".join(parts))
            name = r.name + (" (published, not re-scored)" if r.kind == "published" else "")
            body.append([name, *cells])
        title = f"{display_name(a, aupro)}/{display_name(b, aupro)} (percent; protocol {protocol_name})"
        tables.append(Table(title, ["Method", *cols], body,
                            mark_note="the best re-scored value of the column." if bold_best else ""))
    return tables


def _best(rows: Sequence[PaperRow], code: str, metric: str) -> str:
    vals = [r.values[code].get(metric) for r in rows if r.kind == "scored" and code in r.values]
    vals = [v for v in vals if v is not None and not _nan(v)]
    return pct(max(vals)) if vals else ""


def paper_values(results: Results) -> dict[str, dict[str, float]]:
    """``values[code or 'Mean'][metric]`` of one results object (for :class:`PaperRow`)."""
    out = {c.code: {m.value: c[m] for m in METRICS} for c in results.categories.values()}
    out["Mean"] = {m.value: results.metric(m) for m in METRICS}
    return out


def render_tables(results: "Results | Mapping[str, Any]", *, markdown: bool = True) -> str:
    """The paper's two tables for one method (percent, one decimal), Markdown or aligned text."""
    results = _as_results(results)
    tables = paper_tables([PaperRow(safe_cell(results.method), paper_values(results))], protocol_name=results.protocol_name,
                          aupro=str(results.protocol.get("aupro", "mvtec")))
    out = "\n".join(t.render(markdown) for t in tables)
    n = int(results.mean.get("n_categories", len(results.categories)))
    if n < len(CATEGORIES):
        out += f"\nMean over the {n} scored categories only (unweighted).\n"
    return out


def breakdown_tables(results: Results) -> list[Table]:
    """Per defect type (every metric and the counts) and AUPRO per region size, per category."""
    aupro = str(results.protocol.get("aupro", "mvtec"))
    metric_cols = [display_name(m, aupro) for m in METRICS]
    by_type, by_size = [], []
    for c in results.categories.values():
        for t, b in c.by_type.items():
            by_type.append([c.code, t, str(b.get("n_images", "")), str(b.get("n_defective", "")),
                            *(pct(_unclean(b.get(m.value))) for m in METRICS)])
        for s, b in c.by_size.items():
            by_size.append([c.code, s, str(b.get("n_regions", "")), pct(_unclean(b.get("aupro")))])
    size_note = (f"AUPRO per region size: small < {results.protocol.get('small_max_area', '')} px, medium up to "
                 f"{results.protocol.get('medium_max_area', '')} px, large above (region areas at the protocol's "
                 f"grid); the pooled MVTec AUPRO of the regions of that size against all normal pixels.")
    return [Table("Per defect type (that type's defective images and every good image of the category; percent)",
                  ["Category", "Type", "Images", "Defective", *metric_cols], by_type, left=2),
            Table("AUPRO per region size (percent)", ["Category", "Size", "Regions", "AUPRO"], by_size,
                  [size_note], left=2)]


# files -----------------------------------------------------------------------------------

def results_json(results: "Results | Mapping[str, Any]") -> str:
    """results.json text (NaN as null, keys in a stable order)."""
    return _as_results(results).to_json() if isinstance(results, Results) else \
        json.dumps(_clean(dict(results)), indent=2, allow_nan=False) + "\n"


def results_csv(results: "Results | Mapping[str, Any]") -> str:
    """One row per value: ``method,category,breakdown,metric,value``."""
    obj = results.to_dict() if isinstance(results, Results) else results
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "category", "breakdown", "metric", "value"])
    method = obj["method"]

    def rows(category: str, breakdown: str, block: Mapping[str, Any]) -> None:
        for k, v in block.items():
            if isinstance(v, dict) or k == "code":
                continue
            w.writerow([method, category, breakdown, k, "" if v is None or _nan(v)
                        else repr(float(v)) if isinstance(v, float) else v])

    for folder, c in obj["categories"].items():
        rows(folder, "all", c)
        for t, block in c["by_type"].items():
            rows(folder, f"type:{t}", block)
        for size, block in c["by_size"].items():
            rows(folder, f"size:{size}", block)
    rows("mean", "all", obj["mean"])
    return buf.getvalue()


def check_output_folder(path: str | Path, allowed: Iterable[str] = (*RESULT_FILES, *IMAGE_TABLES),
                        allow_folders: bool = False) -> Path:
    """Check that ``path`` may be replaced by a result set: absent, or a folder holding only ``allowed``
    names (and hidden temporaries); with ``allow_folders``, also sub-folders holding a results.json.

    Raises
    ------
    UsageError
        ``path`` is a file, or a folder holding other files (they would be lost).
    """
    p = Path(path)
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        raise UsageError(f"{p} exists and is not a folder; results are written into a folder of their own")
    if not p.exists():
        return p
    allowed = set(allowed)
    foreign = []
    for entry in sorted(p.iterdir()):
        if entry.name.startswith(".") or entry.name in allowed:
            continue
        if allow_folders and entry.is_dir() and not entry.is_symlink() and (entry / "results.json").is_file():
            continue
        foreign.append(entry.name)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise UsageError(f"{p} holds files that are not threecad results ({shown}); the result set replaces the "
                         f"whole folder, so choose a new or empty one")
    return p


def write_result_set(out_dir: str | Path, texts: Mapping[str, str], *,
                     image_tables: Mapping[str, Results] | None = None) -> list[Path]:
    """Write ``texts`` (name -> text) and the per-image tables into ``out_dir``, published with one rename.

    ``image_tables`` maps a sub-folder ('' for the top) to the results whose per-image
    table goes there. Every file gets the user's umask. Returns the published paths (the
    tables first, then ``texts`` in their order).
    """
    out = Path(out_dir)
    names: list[str] = []
    with atomic_folder(out) as tmp:
        for name, text in texts.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")
        for sub, res in (image_tables or {}).items():
            if not res.images:
                continue
            frame = res.image_frame()
            frame["defect_types"] = frame["defect_types"].map(list)
            folder = tmp / sub if sub else tmp
            folder.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(folder / "images.parquet", index=False)
            frame["defect_types"] = frame["defect_types"].map(";".join)
            frame.to_csv(folder / "images.csv", index=False)
            names += [f"{sub}/{n}" if sub else n for n in IMAGE_TABLES]
    return [out / n for n in [*names, *texts]]


def write_results(results: "Results | Mapping[str, Any]", out_dir: str | Path) -> list[Path]:
    """Write results.json, .csv, .md and the per-image table (images.csv, images.parquet) into ``out_dir``.

    The set is published with one rename: an interrupted run leaves the earlier set (or
    none), never a mix. ``out_dir`` must be absent or hold only result files
    (:func:`check_output_folder`).
    """
    results = _as_results(results)
    out = check_output_folder(out_dir)
    texts = {"results.json": results.to_json(), "results.csv": results_csv(results),
             "results.md": results.to_markdown()}
    return write_result_set(out, texts, image_tables={"": results})
