#!/usr/bin/env python
"""Browser check of ``threecad view``: the FiftyOne app really shows masks and heatmaps.

Starts a private ``mongod`` (as the tests do), builds the dataset from a tiny synthetic
sample (or ``--root``) with a synthetic submission (``eval/synthetic.py``), launches the app
on 127.0.0.1 on a free port, opens it in Debian's headless Chromium (``/usr/bin/chromium``,
driven by Playwright; Playwright's own browser download is never used), waits until the
grid shows masks (red) and heatmaps (green) -- a real condition on the rendered pixels, not
a sleep -- and saves a PNG. Requests that do not go to the app are refused (offline).
Everything it writes besides the PNG lives in a temporary folder (HOME included).

    python scripts/app_screenshot.py --out docs/images/view.png

Exit code 0 when the screenshot shows both overlays, 1 otherwise (with the reason).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DATASET = "threecad-app-check"
MIN_PIXELS = 300  # of each overlay colour in the grid, for the check to pass


def overlay_pixels(png: bytes) -> tuple[int, int]:
    """(mask-red pixels, heatmap-green pixels) in the grid part of a screenshot."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.int16)
    grid = a[140:, 310:]  # right of the sidebar, below the toolbars
    r, g, b = grid[..., 0], grid[..., 1], grid[..., 2]
    red = (r > 150) & (r - np.maximum(g, b) > 70)
    green = (g > 90) & (g - np.maximum(r, b) > 30)
    return int(red.sum()), int(green.sum())


def save_small_png(png: bytes, out: Path, limit: int = 1_000_000) -> int:
    """Write the screenshot, as a 256-colour PNG when the full-colour one is over ``limit`` bytes."""
    import io

    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    if len(png) <= limit:
        out.write_bytes(png)
        return len(png)
    with Image.open(io.BytesIO(png)) as im:
        buf = io.BytesIO()
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    out.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images/view.png", help="the PNG to write")
    parser.add_argument("--root", help="a 3CAD tree (default: a fresh tiny sample)")
    parser.add_argument("--categories", nargs="+", default=["ACC", "AI", "AP", "CS"],
                        help="categories shown (default ACC AI AP CS)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole browser part")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        print(f"app check: {CHROMIUM} is missing (apt-get install chromium, or 'make chromium')", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="threecad-app-") as tmp:
        tmp = Path(tmp)
        os.environ["HOME"] = str(tmp / "home")  # fiftyone writes a few files under ~ (before its import)
        from threecad.fiftyone.db import configure_fiftyone_env, free_port, start_mongod

        server = start_mongod(tmp / "db")
        try:
            configure_fiftyone_env(server.uri, home=tmp / "fiftyone")
            return _check(args, tmp, free_port())
        finally:
            server.stop()


def _check(args: argparse.Namespace, tmp: Path, port: int) -> int:
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.fiftyone import to_fiftyone
    from threecad.fiftyone.app import launch
    from threecad.fiftyone.env import import_fiftyone
    from threecad.manifest import load_manifest

    start = time.perf_counter()
    if args.root:
        root = Path(args.root)
    else:
        from threecad.sample import write_sample

        root = tmp / "3cad"
        write_sample(root, seed=0, scale="tiny", categories=args.categories)
    manifest = load_manifest(root, categories=args.categories)
    preds = write_synthetic_submission(manifest, tmp / "preds")
    dataset = to_fiftyone(root, preds=[preds], categories=args.categories, media_dir=tmp / "media", name=DATASET)
    fo = import_fiftyone()
    from fiftyone import ViewField as F

    view = dataset.match(F("label") == "defect").sort_by("n_regions", reverse=True)
    session = launch(fo, view, port=port)
    url = f"http://127.0.0.1:{port}/datasets/{DATASET}"
    print(f"dataset and app ready in {time.perf_counter() - start:.1f} s: {url}")
    try:
        return _shoot(args, url, port, len(view))
    finally:
        session.close()


def _shoot(args: argparse.Namespace, url: str, port: int, n_samples: int) -> int:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + args.timeout
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                    timeout=args.timeout * 1000)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                       else route.abort())
            page.set_default_timeout(args.timeout * 1000)
            page.goto(url, wait_until="domcontentloaded")
            # the grid: one canvas per tile once the lookers are mounted
            page.wait_for_function("n => document.querySelectorAll('canvas').length >= n",
                                   arg=min(6, n_samples))
            red = green = 0
            png = b""
            while time.monotonic() < deadline:
                for text in ("Dismiss",):  # FiftyOne's promotional pop-up, when it shows
                    button = page.get_by_text(text, exact=True)
                    if button.count() and button.first.is_visible():
                        button.first.click()
                png = page.screenshot()
                red, green = overlay_pixels(png)
                if red >= MIN_PIXELS and green >= MIN_PIXELS:
                    break
                page.wait_for_timeout(500)
            else:
                print(f"app check FAILED: after {args.timeout:.0f} s the grid shows {red} mask pixels and "
                      f"{green} heatmap pixels (need {MIN_PIXELS} of each)", file=sys.stderr)
                Path(args.out).with_suffix(".failed.png").write_bytes(png)
                return 1
        except PlaywrightError as exc:
            print(f"app check FAILED: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    out = Path(args.out)
    size = save_small_png(png, out)
    print(f"app check passed: {red} mask pixels, {green} heatmap pixels; wrote {out} ({size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
