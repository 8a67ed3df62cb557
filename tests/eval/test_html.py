"""The leaderboard page: self-contained, complete, escaped; in headless Chromium it renders
offline and its tables sort (scripts/leaderboard_screenshot.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from threecad.eval.html import HTML_FILE, render_html, write_html
from threecad.eval.leaderboard import score_leaderboard
from threecad.eval.published import published_rows
from threecad.eval.synthetic import write_synthetic_submission
from threecad.manifest import scan

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CATS = ["ACC", "CS"]
EVIL = "<script>alert(1)</script> & co"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []  # (tr class, cell texts) of every table row
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "tr":
            self._row = (dict(attrs).get("class") or "", [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def board(sample_root, tmp_path_factory):
    """Two valid submissions (one with a hostile name), one invalid; bootstrap, a comparison,
    the published rows and the curves."""
    base = tmp_path_factory.mktemp("html_subs")
    manifest = scan(sample_root).manifest
    good = write_synthetic_submission(manifest, base / "good", seed=0, method="good")
    noisy = write_synthetic_submission(manifest, base / "noisy", seed=1, method=EVIL)
    rng = np.random.default_rng(0)
    for p in noisy.rglob("*.npy"):
        a = np.load(p).astype(np.float32)
        np.save(p, (a + 0.7 * rng.standard_normal(a.shape)).astype(np.float32))
    bad = write_synthetic_submission(manifest, base / "bad", seed=2, method="broken")
    next((bad / "Copper_Stator").rglob("*.npy")).unlink()
    return score_leaderboard([str(good), str(noisy), str(bad)], sample_root, categories=CATS, n_resamples=10,
                             seed=0, compare=[("good", EVIL)], include_published=True, keep_curves=True,
                             workers=2, command=["threecad", "leaderboard"])


@pytest.fixture(scope="module")
def page(board, tmp_path_factory):
    return write_html(board, tmp_path_factory.mktemp("html"))


def _parse(text: str) -> _Collect:
    c = _Collect()
    c.feed(text)
    return c


def test_page_is_self_contained(page):
    text = page.read_text(encoding="utf-8")
    parsed = _parse(text)
    assert page.name == HTML_FILE and text.startswith("<!DOCTYPE html>")
    for tag, key, value in parsed.attrs:
        if key == "src":
            assert value.startswith("data:image/png;base64,"), (tag, value[:60])
        if key == "href":
            assert value.startswith("#"), (tag, value)
    assert not {"link", "iframe", "object", "embed"} & set(parsed.tags)
    assert not re.search(r"https?://|url\(|@import|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
    assert "default-src 'none'" in text  # the browser refuses any outside request too
    assert parsed.tags.count("script") == 1 and parsed.tags.count("style") == 1


def test_page_holds_every_part(board, page):
    text = page.read_text(encoding="utf-8")
    parsed = _parse(text)
    ranking = [r for r in parsed.rows if r[1] and r[1][0] in ("1", "2")]
    assert [r[1][1] for r in ranking[:2]] == [e.method for e in board.entries[:2]]
    assert "re-scored" in ranking[0][1][3]
    # every published method is marked, never as re-scored
    published = [r for r in parsed.rows if r[0] == "published"]
    names = {p.method for p in published_rows()}
    assert {r[1][1] for r in published if r[1][0] == "-"} == names
    assert all("published, not re-scored" in " ".join(r[1]) for r in published)
    # the invalid submission is listed with its kind of problem, not its paths
    (invalid,) = [r for r in parsed.rows if r[0] == "invalid"]
    assert "invalid" in invalid[1][3] and "missing_map" in invalid[1][3]
    assert str(Path(board.entries[-1].source).parent) not in text and board.data_root not in text
    # intervals, comparison, types, curves
    good = board.entries[0]
    low = good.results.to_dict()["bootstrap"]["mean"]["pixel_auroc"]["low"]
    assert f"[{100 * low:.1f}, " in text
    assert 'id="comparisons"' in text and "excludes zero" in text
    for folder, block in good.results.to_dict()["categories"].items():
        for t in block["by_type"]:
            assert f"<td>{t}</td>" in text
    images = [v for tag, k, v in parsed.attrs if tag == "img" and k == "src"]
    assert len(images) == 4
    for src in images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    # numbers are carried for sorting: the value of the first ranked P-AUROC mean
    mean_auroc = good.results.to_dict()["mean"]["pixel_auroc"]
    assert f'data-v="{mean_auroc!r}"' in text


def test_method_names_are_escaped(page):
    text = page.read_text(encoding="utf-8")
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text


def test_page_without_curves_says_so(board):
    saved = {id(e): e.curves for e in board.entries}
    try:
        for e in board.entries:
            e.curves = {}
        text = render_html(board)
    finally:
        for e in board.entries:
            e.curves = saved[id(e)]
    assert "No curves" in text and "<img" not in text


def test_cli_writes_the_page(sample_root, tmp_path):
    manifest = scan(sample_root, categories=["CS"]).manifest
    preds = write_synthetic_submission(manifest, tmp_path / "a", seed=0, method="alpha")
    proc = subprocess.run([sys.executable, "-m", "threecad", "leaderboard", str(preds), "--data-root",
                           str(sample_root), "--categories", "CS", "--out", str(tmp_path / "lb"), "--html",
                           str(tmp_path / "site"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "site" / HTML_FILE).read_text(encoding="utf-8")
    assert "alpha" in text and text.count("<img") == 4
    assert json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["entries"][0]["method"] == "alpha"


def _check(html_path: Path, tmp_path: Path, *extra: str):
    return subprocess.run([sys.executable, "scripts/leaderboard_screenshot.py", "--html", str(html_path), *extra],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason=f"{CHROMIUM} is missing ('make chromium' installs Debian's chromium)")
def test_page_renders_offline_and_sorts_in_chromium(page, tmp_path):
    pytest.importorskip("playwright", reason="the 'browser' extra (playwright) is not installed")
    from PIL import Image

    out = tmp_path / "leaderboard.png"
    proc = _check(page, tmp_path, "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leaderboard check passed" in proc.stdout
    with Image.open(out) as im:
        assert im.size[0] >= 1000 and np.asarray(im.convert("L")).std() > 10
    # the check fails on a page that reaches outside, or whose tables do not sort
    text = page.read_text(encoding="utf-8")
    outside = tmp_path / "outside.html"
    outside.write_text(text.replace("</main>", '<img src="http://127.0.0.1:9/x.png"></main>')
                       .replace("default-src 'none'; img-src data:;", "default-src *;"), encoding="utf-8")
    proc = _check(outside, tmp_path)
    assert proc.returncode == 1 and "outside request" in proc.stderr
    unsorted = tmp_path / "unsorted.html"
    unsorted.write_text(re.sub(r"<script>.*?</script>", "", text, flags=re.S), encoding="utf-8")
    proc = _check(unsorted, tmp_path)
    assert proc.returncode == 1 and "did not sort" in proc.stderr
