#!/usr/bin/env python
"""Browser check of ``threecad view``: the FiftyOne app really shows masks, heatmaps, boxes and labels.

Starts a private ``mongod`` (as the tests do), builds the dataset from a tiny synthetic
sample (or ``--root``) with a synthetic submission (``eval/synthetic.py``), launches the app
on 127.0.0.1 on a free port, opens it in Debian's headless Chromium (``/usr/bin/chromium``,
driven by Playwright; Playwright's own browser download is never used), waits until the
grid shows, as the app opens by default, the mask outlines (red), the heatmaps (green), the
region boxes (yellow outlines) with their defect-type labels (solid yellow label tags) and
the images' defect types (solid blue pills) -- real conditions on the rendered pixels, not a
sleep -- then opens the first sample and checks that its boxes carry their defect-type labels
(solid yellow label tags in the sample view), and saves a PNG of the grid. Requests that do
not go to the app are refused (offline). The browser starts as one that has already seen
FiftyOne's one-time "Explore Enterprise" tooltip (a flag in its local storage, which no
server setting can turn off); any other pop-up fails the check.
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
MIN_LABEL_PIXELS = 150  # of solid label backgrounds (box labels, defect-type pills)
REOPEN_SECONDS = 8.0    # the first sample is clicked again when its labels have not shown by then (doubling)
OVERLAYS = ("mask outlines (red)", "heatmaps (green)", "region boxes (yellow)", "defect types (solid blue)")
SEEN_TOOLTIP = "window.localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true')"


def _solid(mask, size: int = 5) -> "object":
    """Pixels of ``mask`` inside a solid ``size`` x ``size`` block (label backgrounds, not
    the 2-3 px lines of boxes and outlines)."""
    import cv2
    import numpy as np

    return cv2.erode(mask.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


def _rgb(png: bytes):
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def _yellow(a):
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return (r > 190) & (g > 160) & (b < 90) & (r - b > 120)   # #ffd400


def overlay_pixels(png: bytes) -> tuple[int, int, int, int]:
    """Pixels of each of :data:`OVERLAYS` in the grid part of a screenshot."""
    import numpy as np

    grid = _rgb(png)[140:, 310:]  # right of the sidebar, below the toolbars
    r, g, b = grid[..., 0], grid[..., 1], grid[..., 2]
    red = (r > 150) & (r - np.maximum(g, b) > 70)
    green = (g > 90) & (g - np.maximum(r, b) > 30)
    yellow = _yellow(grid)
    blue = (b > 190) & (g > 140) & (r < 140) & (b - r > 90)     # #4fc3f7
    return int(red.sum()), int(green.sum()), int((yellow & ~_solid(yellow)).sum()), int(_solid(blue).sum())


def label_pixels(png: bytes, sidebar: int = 420) -> int:
    """Solid yellow pixels (box label tags) in the image part of the sample view (left of its sidebar)."""
    a = _rgb(png)
    return int(_solid(_yellow(a[60:, : a.shape[1] - sidebar])).sum())


def _enough(counts) -> bool:
    return all(c >= (MIN_PIXELS if k < 3 else MIN_LABEL_PIXELS) for k, c in enumerate(counts))


def save_small_png(png: bytes, out: Path, limit: int = 500_000) -> int:
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


def _sample_labels(page, deadline: float) -> tuple[int, bytes]:
    """Open the first sample of the grid; wait until its boxes show their labels. Returns the
    label pixels and the screenshot."""
    labels, png = 0, b""
    clicked, wait = -REOPEN_SECONDS, REOPEN_SECONDS / 2
    while time.monotonic() < deadline:
        if time.monotonic() - clicked >= wait:
            # (again) when no labels showed: on a busy machine a click on a grid that is not
            # yet live opens nothing, so close whatever is open and click the first tile anew,
            # each time waiting twice as long (a slow modal gets the time to draw)
            page.keyboard.press("Escape")
            page.locator("canvas").first.click()
            clicked, wait = time.monotonic(), 2 * wait
        page.wait_for_timeout(500)
        png = page.screenshot()
        labels = label_pixels(png)
        if labels >= MIN_LABEL_PIXELS:
            break
    return labels, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images/view.png", help="the PNG to write")
    parser.add_argument("--sample-out", help="also write the PNG of the first sample's view (its labelled boxes)")
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
            page.add_init_script(SEEN_TOOLTIP)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                       else route.abort())
            page.set_default_timeout(args.timeout * 1000)
            page.goto(url, wait_until="domcontentloaded")
            # the grid: one canvas per tile once the lookers are mounted
            page.wait_for_function("n => document.querySelectorAll('canvas').length >= n",
                                   arg=min(6, n_samples))
            counts = (0,) * len(OVERLAYS)
            png = b""
            while time.monotonic() < deadline:
                png = page.screenshot()
                counts = overlay_pixels(png)
                if _enough(counts):
                    break
                page.wait_for_timeout(500)
            else:
                shown = ", ".join(f"{c} px of {name}" for name, c in zip(OVERLAYS, counts))
                print(f"app check FAILED: after {args.timeout:.0f} s the grid shows {shown} (need {MIN_PIXELS} "
                      f"of the first three, {MIN_LABEL_PIXELS} of the labels)", file=sys.stderr)
                Path(args.out).with_suffix(".failed.png").write_bytes(png)
                return 1
            popups = [t for t in ("Dismiss", "Query Performance") if page.get_by_text(t).count()]
            if popups:
                print(f"app check FAILED: the app opened with a pop-up ({', '.join(popups)})", file=sys.stderr)
                Path(args.out).with_suffix(".failed.png").write_bytes(png)
                return 1
            labels, modal = _sample_labels(page, deadline)
            if labels < MIN_LABEL_PIXELS:
                print(f"app check FAILED: the first sample shows {labels} px of box labels (solid yellow; need "
                      f"{MIN_LABEL_PIXELS})", file=sys.stderr)
                Path(args.out).with_suffix(".failed-sample.png").write_bytes(modal)
                return 1
            if args.sample_out:
                save_small_png(modal, Path(args.sample_out))
        except PlaywrightError as exc:
            print(f"app check FAILED: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    out = Path(args.out)
    size = save_small_png(png, out)
    shown = ", ".join(f"{c} px of {name}" for name, c in zip(OVERLAYS, counts))
    print(f"app check passed: {shown}; {labels} px of box labels in the first sample; wrote {out} "
          f"({size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
