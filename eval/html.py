"""The leaderboard as one self-contained static page (``threecad leaderboard --html DIR``).

:func:`write_html` writes ``DIR/index.html``: one file, no server, nothing fetched from
anywhere (styles and the sorting script inline, figures as ``data:`` URIs), so a challenge
organiser can publish it as it is. It holds:

* the ranked table (mean metrics, with their bootstrap intervals when computed; invalid
  submissions marked; the paper's published rows marked *published, not re-scored*);
* one table per metric with every category (best re-scored value per column in bold);
* the bootstrap intervals per method and the paired comparisons;
* per-category tables of every defect type;
* the curves (one panel per category, one line per method) when the leaderboard kept them
  (:func:`eval.leaderboard.score_leaderboard` with ``keep_curves=True``).

Every table sorts when its header is clicked (numbers: highest first, then lowest; missing
values always last). Local paths (data root, submission paths, the command line) are left
out: they belong to the machine that scored, not to the published page.
"""

from __future__ import annotations

import base64
import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from threecad import __version__
from threecad.atomic import write_text_atomic
from threecad.categories import CATEGORIES

from .bootstrap import BOOTSTRAP_METRICS
from .leaderboard import Entry, Leaderboard
from .published import PUBLISHED_SOURCE, published_rows

__all__ = ["HTML_FILE", "render_html", "write_html", "metric_names"]

HTML_FILE = "index.html"
_TYPE_METRICS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")


def metric_names(board: Leaderboard) -> dict[str, str]:
    """Column titles of the metrics (the AUPRO column is the authors' per-image PRO under ``paper``)."""
    aupro = "P-PRO (authors')" if board.protocol.aupro == "paper_per_image" else "AUPRO"
    return {"image_auroc": "I-AUROC", "image_ap": "I-AP", "pixel_auroc": "P-AUROC", "pixel_ap": "P-AP",
            "aupro": aupro}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _cell(v: Any, *, low: Any = None, high: Any = None, best: bool = False, signed: bool = False) -> str:
    """A numeric cell: percent with one decimal, the raw value in ``data-v`` for sorting."""
    f = _num(v)
    if math.isnan(f):
        return '<td class="num" data-v="">-</td>'
    text = f"{100 * f:+.1f}" if signed else f"{100 * f:.1f}"
    if best:
        text = f"<b>{text}</b>"
    lo, hi = _num(low), _num(high)
    if not (math.isnan(lo) or math.isnan(hi)):
        fmt = "{:+.1f}" if signed else "{:.1f}"
        text += f' <span class="ci">[{fmt.format(100 * lo)}, {fmt.format(100 * hi)}]</span>'
    return f'<td class="num" data-v="{f!r}">{text}</td>'


def _table(headers: Sequence[str], rows: Iterable[str], *, caption: str = "", numeric_from: int = 1) -> str:
    ths = "".join(f'<th scope="col" class="{"num" if i >= numeric_from else "txt"}" tabindex="0">{_e(h)}</th>'
                  for i, h in enumerate(headers))
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable">{cap}<thead><tr>{ths}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _res(e: Any) -> dict[str, Any]:
    """An entry's results as the results.json object (typed :class:`Results` or a plain dict)."""
    return e.results.to_dict() if hasattr(e.results, "to_dict") else e.results


def _scored(board: Leaderboard) -> list[Entry]:
    return [e for e in board.entries if e.status == "scored"]


def _codes(board: Leaderboard) -> list[tuple[str, str]]:
    """(folder, code) of the scored categories, in the paper's order."""
    scored = set(board.categories)
    return [(c.folder, c.code) for c in CATEGORIES if c.folder in scored]


def _category_value(e: Entry, folder: str, metric: str) -> float:
    block = _res(e)["categories"].get(folder)
    return float("nan") if block is None else _num(block.get(metric))


def _interval(e: Entry, folder: str | None, metric: str) -> tuple[Any, Any]:
    boot = _res(e).get("bootstrap")
    if not boot:
        return None, None
    block = boot["mean"] if folder is None else boot["categories"].get(folder, {})
    iv = block.get(metric) or {}
    return iv.get("low"), iv.get("high")


def _published_badge() -> str:
    return '<span class="badge pub" title="copied from the 3CAD paper; not re-scored here">published, not re-scored</span>'


def _ranked_table(board: Leaderboard) -> str:
    names = metric_names(board)
    metrics = list(BOOTSTRAP_METRICS)
    best = {m: max((v for v in (_num(_res(e)["mean"].get(m)) for e in _scored(board)) if not math.isnan(v)),
                   default=float("nan")) for m in metrics}
    rows = []
    for rank, e in enumerate(board.entries, 1):
        if e.status != "scored":
            kinds = sorted({p.kind for p in e.problems})
            why = f"{len(e.problems)} problem(s): {', '.join(kinds)}" if e.problems else e.reason
            rows.append(f'<tr class="invalid"><td class="num" data-v="">-</td><td class="txt">{_e(e.method)}</td><td></td>'
                        f'<td class="txt"><span class="badge bad">invalid</span> {_e(why)}</td>'
                        + '<td class="num" data-v="">-</td>' * (len(metrics) + 1) + "</tr>")
            continue
        cells = "".join(_cell(_res(e)["mean"].get(m), low=_interval(e, None, m)[0], high=_interval(e, None, m)[1],
                              best=_num(_res(e)["mean"].get(m)) == best[m]) for m in metrics)
        rows.append(f'<tr><td class="num" data-v="{rank}">{rank}</td><td class="txt">{_e(e.method)}</td>'
                    f'<td>{_e(_res(e).get("team") or "")}</td><td><span class="badge ok">re-scored</span></td>'
                    f'{cells}<td class="num" data-v="{len(_res(e)["categories"])}">'
                    f'{len(_res(e)["categories"])}</td></tr>')
    if board.include_published:
        for p in published_rows():
            mean = p.values.get("Mean", {})
            cells = "".join(_cell(mean.get(m)) for m in metrics)
            rows.append(f'<tr class="published"><td class="num" data-v="">-</td><td>{_e(p.method)}</td>'
                        f'<td>{_e(p.family)}</td><td>{_published_badge()}</td>{cells}'
                        f'<td class="num" data-v="">-</td></tr>')
    headers = ["Rank", "Method", "Team / family", "Status", *(f"{names[m]} (mean)" for m in metrics), "Categories"]
    return _table(headers, rows, numeric_from=4)


def _per_category_tables(board: Leaderboard) -> str:
    names = metric_names(board)
    codes = _codes(board)
    published = published_rows() if board.include_published else []
    out = []
    for m in BOOTSTRAP_METRICS:
        columns = [*(folder for folder, _ in codes), None]
        best = {}
        for folder in columns:
            vals = [(_category_value(e, folder, m) if folder else _num(_res(e)["mean"].get(m))) for e in _scored(board)]
            vals = [v for v in vals if not math.isnan(v)]
            best[folder] = max(vals) if vals else float("nan")
        rows = []
        for e in _scored(board):
            cells = []
            for folder in columns:
                v = _category_value(e, folder, m) if folder else _num(_res(e)["mean"].get(m))
                cells.append(_cell(v, best=not math.isnan(v) and v == best[folder]))
            rows.append(f"<tr><td class=\"txt\">{_e(e.method)}</td>{''.join(cells)}</tr>")
        if any(not math.isnan(_num(p.values.get(code, {}).get(m))) for p in published for code in p.values):
            for p in published:
                cells = "".join(_cell(p.values.get(code, {}).get(m)) for code in [*(c for _, c in codes), "Mean"])
                rows.append(f'<tr class="published"><td class="txt">{_e(p.method)} {_published_badge()}</td>{cells}</tr>')
        out.append(f"<h3>{_e(names[m])}</h3>")
        out.append(_table(["Method", *(c for _, c in codes), "Mean"], rows))
    return "\n".join(out)


def _interval_tables(board: Leaderboard) -> str:
    names = metric_names(board)
    out = [f"<p>{board.n_resamples} resamples (seed {board.seed}); test images resampled within each category, "
           f"good and defective separately; percentile intervals at {100 * board.confidence:g}%.</p>"]
    for e in _scored(board):
        boot = _res(e).get("bootstrap")
        if not boot:
            continue
        rows = []
        for folder, block in _res(e)["categories"].items():
            cells = "".join(_cell(block.get(m), low=_interval(e, folder, m)[0], high=_interval(e, folder, m)[1])
                            for m in BOOTSTRAP_METRICS)
            rows.append(f"<tr><td>{_e(block['code'])}</td>{cells}</tr>")
        cells = "".join(_cell(_res(e)["mean"].get(m), low=_interval(e, None, m)[0], high=_interval(e, None, m)[1])
                        for m in BOOTSTRAP_METRICS)
        rows.append(f'<tr class="mean"><td>Mean</td>{cells}</tr>')
        out.append(f"<h3>{_e(e.method)}</h3>")
        out.append(_table(["Category", *(names[m] for m in BOOTSTRAP_METRICS)], rows))
    return "\n".join(out)


def _comparison_tables(board: Leaderboard) -> str:
    names = metric_names(board)
    out = [f"<p>Differences A &minus; B in percentage points with their {100 * board.confidence:g}% paired "
           f"bootstrap interval (the same resamples for both); &#9733; = the interval excludes zero.</p>"]
    for c in board.comparisons:
        out.append(f"<h3>{_e(c['a'])} &minus; {_e(c['b'])}</h3>")
        if "error" in c:
            out.append(f"<p>{_e(c['error'])}</p>")
            continue
        codes = c.get("codes", {})
        rows = []
        for label, block in [*((codes.get(k, k), v) for k, v in c["categories"].items()), ("Mean", c["mean"])]:
            cells = []
            for m in BOOTSTRAP_METRICS:
                d = block.get(m) or {}
                cell = _cell(d.get("difference"), low=d.get("low"), high=d.get("high"), signed=True)
                if d.get("excludes_zero"):
                    cell = cell.replace("</td>", ' <span class="star" title="the interval excludes zero">&#9733;</span></td>')
                cells.append(cell)
            rows.append(f'<tr{" class=mean" if label == "Mean" else ""}><td>{_e(label)}</td>{"".join(cells)}</tr>')
        out.append(_table(["Category", *(names[m] for m in BOOTSTRAP_METRICS)], rows))
    return "\n".join(out)


def _type_tables(board: Leaderboard) -> str:
    names = metric_names(board)
    out = []
    for folder, code in _codes(board):
        rows = []
        for e in _scored(board):
            block = _res(e)["categories"].get(folder)
            if block is None:
                continue
            boot = ((_res(e).get("bootstrap") or {}).get("categories", {}).get(folder) or {}).get("by_type", {})
            for t, tb in block.get("by_type", {}).items():
                cells = "".join(_cell(tb.get(m), low=(boot.get(t, {}).get(m) or {}).get("low"),
                                      high=(boot.get(t, {}).get(m) or {}).get("high")) for m in _TYPE_METRICS)
                n_def = tb.get("n_defective", 0)
                rows.append(f"<tr><td>{_e(t)}</td><td class=\"txt\">{_e(e.method)}</td>"
                            f'<td class="num" data-v="{n_def}">{n_def}</td>{cells}</tr>')
        if not rows:
            continue
        out.append(f'<details><summary>{_e(code)} &mdash; {_e(folder)}</summary>')
        out.append(_table(["Defect type", "Method", "Defective images", *(names[m] for m in _TYPE_METRICS)], rows,
                          numeric_from=2))
        out.append("</details>")
    return "\n".join(out) or "<p>No defect-type breakdown.</p>"


def _figures(board: Leaderboard) -> str:
    from .figures import CURVE_KINDS, method_curve_figures

    scored = [e for e in _scored(board) if getattr(e, "curves", None)]
    if not scored:
        return ("<p>No curves: the leaderboard was scored without keeping them "
                "(<code>threecad leaderboard ... --html DIR</code> keeps them).</p>")
    labels: dict[str, int] = {}
    for e in scored:
        labels[e.method] = labels.get(e.method, 0) + 1
    curves = {(e.method if labels[e.method] == 1 else f"{e.method} ({e.slug})"): e.curves for e in scored}
    figs = method_curve_figures(curves, [folder for folder, _ in _codes(board)], fmt="png")
    titles = {"roc": "Pixel ROC", "pr": "Pixel precision-recall", "pro": "PRO up to the FPR limit",
              "image_roc": "Image ROC"}
    out = ["<p>Exact curves of the re-scored methods (the scoring engine's counts), thinned for drawing "
           "without moving their area by more than 1e-4. Published rows have no curves.</p>"]
    for kind in CURVE_KINDS:
        if kind in figs:
            data = base64.b64encode(figs[kind]).decode("ascii")
            out.append(f'<figure><img alt="{_e(titles[kind])} per category" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_e(titles[kind])}</figcaption></figure>")
    return "\n".join(out)


_CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--head:#24324a;--pub:#fff6dc;--bad:#fdecec;--accent:#2b6cb0}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0;background:#f6f7fa}header{background:var(--head);color:#fff;padding:18px 28px}header h1{margin:0 0 4px;
font-size:22px}header p{margin:2px 0;color:#cfd8e8}main{padding:8px 28px 40px;max-width:1500px}
h2{margin:28px 0 8px;font-size:18px;border-bottom:2px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
nav a{color:#fff;margin-right:14px;text-decoration:none;border-bottom:1px dotted #9fb3d1}
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;margin:6px 0 14px;min-width:40%}
th,td{border:1px solid var(--line);padding:4px 8px;white-space:nowrap}thead th{background:#eef1f6;cursor:pointer;
user-select:none;position:relative;padding-right:18px}th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
th[aria-sort=descending]::after{content:"\\25BC";position:absolute;right:4px;font-size:9px;top:8px}
th[aria-sort=ascending]::after{content:"\\25B2";position:absolute;right:4px;font-size:9px;top:8px}
tbody tr:nth-child(even){background:#fafbfd}tr.published{background:var(--pub)!important;font-style:italic}
tr.invalid{background:var(--bad)!important;color:#8a1c1c}tr.mean{font-weight:600}.ci{display:block;color:var(--muted);font-size:11px;line-height:1.2}
td.txt{white-space:normal;min-width:9em;max-width:24em}header code{background:rgba(255,255,255,.12);color:#fff}
.badge{display:inline-block;font-size:11px;padding:1px 6px;border-radius:9px;font-style:normal;font-weight:600}
.badge.ok{background:#e3f4e8;color:#1d6b35}.badge.pub{background:#f7e2a8;color:#6b4e00}.badge.bad{background:#f6c9c9;color:#8a1c1c}
.star{color:#c05621}figure{margin:10px 0 18px;background:#fff;border:1px solid var(--line);padding:8px}
figure img{max-width:100%;height:auto}figcaption{color:var(--muted)}details{margin:4px 0}summary{cursor:pointer;font-weight:600}
.note{color:var(--muted)}code{background:#eef1f6;padding:0 3px;border-radius:3px}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent.trim().toLowerCase();
    return v===''?null:parseFloat(v);}
  function sort(th){
    var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex;
    var numeric=Array.prototype.some.call(body.rows,function(r){return r.cells[i]&&r.cells[i].hasAttribute('data-v');});
    var dir=th.getAttribute('aria-sort')==='descending'?'ascending':
            (th.getAttribute('aria-sort')==='ascending'?'descending':(numeric?'descending':'ascending'));
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){c.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
    var rows=Array.prototype.slice.call(body.rows),sign=dir==='ascending'?1:-1;
    rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      return (x<y?-1:x>y?1:0)*sign;});
    rows.forEach(function(r){body.appendChild(r);});
  }
  document.querySelectorAll('table.sortable thead th').forEach(function(th){
    th.addEventListener('click',function(){sort(th);});
    th.addEventListener('keydown',function(ev){if(ev.key==='Enter'||ev.key===' '){ev.preventDefault();sort(th);}});
  });
})();
"""


def render_html(board: Leaderboard, *, created: datetime | None = None) -> str:
    """The whole page (see the module doc) as one string."""
    created = created or datetime.now(timezone.utc)
    n_ok = len(_scored(board))
    n_bad = len(board.entries) - n_ok
    names = metric_names(board)
    sections = [("ranking", "Ranking", _ranked_table(board)),
                ("categories", "Per category", _per_category_tables(board))]
    if board.n_resamples:
        sections.append(("intervals", "Bootstrap intervals", _interval_tables(board)))
    if board.comparisons:
        sections.append(("comparisons", "Paired comparisons", _comparison_tables(board)))
    sections.append(("types", "Per defect type", _type_tables(board)))
    sections.append(("curves", "Curves", _figures(board)))
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(f'<section id="{sid}"><h2>{_e(title)}</h2>\n{content}</section>' for sid, title, content in sections)
    pub = (f'<p class="note">Rows marked {_published_badge()} are copied from the {_e(PUBLISHED_SOURCE)}; they '
           f"are not re-scored here and are comparable number for number with the re-scored rows only under the "
           f"<code>paper</code> protocol.</p>" if board.include_published else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>3CAD leaderboard ({_e(board.protocol.name)} protocol)</title>
<style>{_CSS}</style></head>
<body><header><h1>3CAD leaderboard &mdash; {_e(board.protocol.name)} protocol</h1>
<p>{n_ok} re-scored, {n_bad} invalid; ranked by mean {_e(names.get(board.rank_by, board.rank_by))}. Values in percent;
best re-scored value per column in bold; Mean is the unweighted mean over the categories a method was scored on.</p>
<p>threecad {_e(__version__)} &middot; ground truth sha256 <code>{_e(board.ground_truth_sha256 or 'n/a')}</code>
&middot; generated {_e(created.strftime('%Y-%m-%d %H:%M UTC'))}</p>
<nav>{nav}</nav></header>
<main>{pub}
{body}
<p class="note">Click a column header to sort (numbers highest first; click again to reverse).
Written by <code>threecad leaderboard --html</code>; the numbers are those of leaderboard.json.</p>
</main>
<script>{_JS}</script>
</body></html>
"""


def write_html(board: Leaderboard, out_dir: str | os.PathLike[str]) -> Path:
    """Write :data:`HTML_FILE` into ``out_dir`` (created when missing) atomically; return its path."""
    path = Path(out_dir) / HTML_FILE
    write_text_atomic(path, render_html(board))
    return path
