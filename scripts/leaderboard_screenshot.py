#!/usr/bin/env python
"""Browser check of ``threecad leaderboard --html``: the page renders offline and its tables sort.

Opens the page (``--html FILE``, or one built here from a tiny synthetic sample with three
synthetic submissions, bootstrap intervals, a paired comparison and the published rows) in
Debian's headless Chromium (``/usr/bin/chromium``, driven by Playwright; Playwright's own
browser download is never used). Every request that is not ``file://`` or ``data:`` is
refused and recorded: the check fails if the page attempted any. It then checks that the
ranking table and the curves are shown, clicks a column header of the ranking table and
checks the new order of its rows (against the numbers in the page), clicks it again
(reversed order), and saves a screenshot of the top of the page.

    python scripts/leaderboard_screenshot.py --out docs/images/leaderboard.png

Exit code 0 when every check passes, 1 otherwise (with the reason).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def build_page(tmp: Path, categories: list[str]) -> Path:
    """A leaderboard page of three synthetic submissions on a fresh tiny sample."""
    import json

    import numpy as np

    from threecad.eval.html import write_html
    from threecad.eval.leaderboard import score_leaderboard
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.manifest import scan
    from threecad.sample import write_sample

    root = tmp / "3cad"
    write_sample(root, seed=0, scale="tiny", categories=categories)
    manifest = scan(root).manifest
    subs = []
    rng = np.random.default_rng(0)
    for k, (name, noise) in enumerate((("blurred ground truth", 0.0), ("noisier variant", 0.8),
                                       ("another team's method, v2", 0.4))):
        path = write_synthetic_submission(manifest, tmp / f"sub{k}", seed=k, method=name)
        if noise:
            for p in path.rglob("*.npy"):
                a = np.load(p).astype(np.float32)
                np.save(p, (a + noise * rng.standard_normal(a.shape)).astype(np.float32))
        meta = json.loads((path / "submission.json").read_text())
        meta["method"] = name
        (path / "submission.json").write_text(json.dumps(meta))
        subs.append(path)
    board = score_leaderboard([str(p) for p in subs], root, categories=categories, n_resamples=30, seed=0,
                              compare=[("blurred ground truth", "noisier variant")], include_published=True,
                              keep_curves=True, workers=2, command=["threecad", "leaderboard"])
    return write_html(board, tmp / "html")


def check_page(page_path: Path, out: Path | None, *, timeout: float = 60.0, width: int = 1400,
               height: int = 820) -> list[str]:
    """Open the page offline and check it; return the failures (empty when it passes)."""
    from playwright.sync_api import sync_playwright

    failures: list[str] = []
    refused: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                    timeout=timeout * 1000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout * 1000)

            def route(r):
                url = r.request.url
                if url.startswith(("file://", "data:")):
                    r.continue_()
                else:
                    refused.append(url)
                    r.abort()

            page.route("**/*", route)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            failures += [f"script error: {e}" for e in errors]
            if "3CAD leaderboard" not in page.title():
                failures.append(f"unexpected title {page.title()!r}")
            table = page.locator("#ranking table")
            n_rows = table.locator("tbody tr").count()
            if n_rows < 2:
                failures.append(f"the ranking table has {n_rows} rows")
            images = page.locator("#curves img")
            loaded = page.evaluate("() => Array.from(document.querySelectorAll('#curves img'))"
                                   ".filter(i => i.complete && i.naturalWidth > 100).length")
            if images.count() == 0 or loaded != images.count():
                failures.append(f"curves: {loaded} of {images.count()} images shown")
            failures += _check_sort(page)
            if out is not None:  # the page as it opens, for the screenshot
                page.reload(wait_until="load")
                png = page.screenshot()
                out.parent.mkdir(parents=True, exist_ok=True)
                _save_small_png(png, out)
        finally:
            browser.close()
    if refused:
        failures.append(f"the page attempted {len(refused)} outside request(s), e.g. {refused[0]}")
    return failures


def _column_values(page, header_text: str) -> list[float]:
    """The numbers (data-v) of a column of the ranking table, in row order (NaN when missing)."""
    values = page.evaluate(
        """(title) => {
            const t = document.querySelector('#ranking table');
            const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.startsWith(title));
            return Array.from(t.tBodies[0].rows).map(r => r.cells[i].getAttribute('data-v'));
        }""", header_text)
    return [float(v) if v not in (None, "") else math.nan for v in values]


def _check_sort(page) -> list[str]:
    failures = []
    header = page.locator("#ranking thead th", has_text="AUPRO (mean)").first
    before = _column_values(page, "AUPRO (mean)")
    header.click()
    first = _column_values(page, "AUPRO (mean)")
    header.click()
    second = _column_values(page, "AUPRO (mean)")
    numbers = sorted(v for v in before if not math.isnan(v))
    n_missing = sum(math.isnan(v) for v in before)
    if [v for v in first if not math.isnan(v)] != numbers[::-1] or any(map(math.isnan, first[:len(numbers)])):
        failures.append(f"first click on AUPRO did not sort highest first: {first}")
    if [v for v in second if not math.isnan(v)] != numbers or sum(map(math.isnan, second[-n_missing:] if n_missing else [])) != n_missing:
        failures.append(f"second click on AUPRO did not sort lowest first (missing last): {second}")
    if page.locator("#ranking thead th[aria-sort=ascending]").count() != 1:
        failures.append("the sorted column is not marked")
    return failures


def _save_small_png(png: bytes, out: Path, limit: int = 400_000) -> int:
    import io

    from PIL import Image

    if len(png) <= limit:
        out.write_bytes(png)
        return len(png)
    with Image.open(io.BytesIO(png)) as im:
        buf = io.BytesIO()
        im.convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    out.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", help="the page to check (default: one built here from a tiny sample)")
    parser.add_argument("--out", help="write a screenshot of the top of the page here (PNG)")
    parser.add_argument("--categories", nargs="+", default=["ACC", "AI", "CS"],
                        help="categories of the page built here (default ACC AI CS)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each browser step")
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        print(f"leaderboard check: {CHROMIUM} is missing (apt-get install chromium, or 'make chromium')",
              file=sys.stderr)
        return 1
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="threecad-html-") as tmp:
        page = Path(args.html) if args.html else build_page(Path(tmp), args.categories)
        failures = check_page(page, Path(args.out) if args.out else None, timeout=args.timeout)
    if failures:
        for f in failures:
            print(f"leaderboard check FAILED: {f}", file=sys.stderr)
        return 1
    print(f"leaderboard check passed in {time.perf_counter() - start:.1f} s: renders offline, tables sort"
          + (f"; wrote {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
