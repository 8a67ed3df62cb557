"""The README runs as written: every ``sh`` and ``python`` block is extracted and run, in order.

The blocks run in one scratch folder on a synthetic tree, so a block can use what an earlier
one made (a submission, a board). Only the README's placeholders are substituted, with the
table :data:`PLACES` below (``ROOT`` -> the scratch tree, the Drive and DTD addresses -> a
local HTTP server on 127.0.0.1 serving self-made archives, ...). A block that cannot run here
says so right above its fence with ``<!-- readme-test: skip: <reason> -->``; the reasons are
listed by :func:`test_readme_skips_are_few_and_explained`. A ``python`` block runs in a fresh
interpreter in the scratch folder.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DIRECTIVE = re.compile(r"<!--\s*readme-test:\s*(?P<what>skip|setup)\s*:?\s*(?P<why>.*?)\s*-->")
# The set-up commands are what the test itself runs under (make test), never re-run inside it.
SETUP_ONLY = ("make demo", "make test")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # the reason, when marked skip


def readme_blocks(path: Path = README) -> list[Block]:
    """Every ``sh``/``python`` fenced block of ``path``, with the directive right above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        lang = m.group(1)
        if lang in ("sh", "python"):
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            d = DIRECTIVE.search(lines[k]) if k >= 0 else None
            skip = (d.group("why") or d.group("what")) if d else None
            blocks.append(Block(lang, "\n".join(lines[i + 1:j]), i + 1, skip))
        i = j + 1
    return blocks


def test_readme_blocks_are_found():
    blocks = readme_blocks()
    assert sum(b.lang == "sh" for b in blocks) >= 10
    assert sum(b.lang == "python" for b in blocks) >= 3


def test_readme_skips_are_few_and_explained():
    skipped = [b for b in readme_blocks() if b.skip]
    for b in skipped:
        assert len(b.skip) >= 12, f"README line {b.line}: a skip needs its reason"
    assert len(skipped) <= 4, [(b.line, b.skip) for b in skipped]


# --- running the blocks ------------------------------------------------------------------

#: Commands shown in the README that run elsewhere in the suite, not here, and why: each maps a
#: command prefix to the test that runs it (checked to exist) and the reason it is not run here.
ELSEWHERE = {
    "threecad view": ("tests/threecad/fiftyone/test_cli_view.py::test_view_serves_the_app_and_stops_on_sigterm",
                      "opens the app and serves it until Ctrl-C"),
    "threecad train": ("tests/reference_models/cfrg/test_predict.py::test_cli_train_predict_eval",
                       "the paper's recipe trains for hours on a CPU; the test trains tiny models"),
    "threecad predict --model cfrg": ("tests/reference_models/cfrg/test_predict.py::test_cli_train_predict_eval",
                                      "needs the trained models of the line above"),
    "threecad eval cfrg-preds/": ("tests/reference_models/cfrg/test_predict.py::test_cli_train_predict_eval",
                                 "scores the CFRG submission of the lines above"),
    "threecad download --dtd": ("tests/threecad/test_download.py::test_dtd_falls_back_to_its_drive_mirror",
                                "the textures' official site is outside this machine"),
    "pip install": ("Makefile", "installs from the package index (make installs every extra)"),
}
#: Python blocks run elsewhere (a block is named by a string it holds).
ELSEWHERE_PY = {
    "to_fiftyone(": ("tests/threecad/fiftyone/test_build.py::test_one_sample_per_test_image_with_known_values",
                     "needs the FiftyOne database the fiftyone tests start once"),
}


def _continued(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip() and not cur.lstrip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def _elsewhere(command: str) -> tuple[str, str] | None:
    for prefix, where in ELSEWHERE.items():
        if command.startswith(prefix):
            return where
    return None


def test_commands_run_elsewhere_are_tested_there():
    for where, _why in [*ELSEWHERE.values(), *ELSEWHERE_PY.values()]:
        path, _, name = where.partition("::")
        text = (REPO / path).read_text(encoding="utf-8")
        assert not name or f"def {name}(" in text, where


@dataclass
class Workspace:
    """The scratch folder the README's blocks run in, and what stands in for its placeholders."""

    cwd: Path
    env: dict[str, str]
    places: dict[str, str]  # placeholder text -> what it becomes (longest first when applied)

    def substitute(self, text: str, *, keep: tuple[str, ...] = ()) -> str:
        for key in sorted(self.places, key=len, reverse=True):
            if key not in keep:
                text = text.replace(key, self.places[key])
        return text


def _zip_tree(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return dest


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A scratch folder with a tiny tree, submissions, a local download server and a Dask scheduler."""
    import hashlib
    import tarfile

    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.manifest import scan
    from threecad.sample import write_sample
    from tests.threecad.download_server import DownloadServer

    ws = tmp_path_factory.mktemp("readme")
    root = ws / "ROOT"
    write_sample(root, seed=0, scale="tiny")
    write_sample(ws / "OLD_TREE", seed=1, scale="tiny", names="pinyin", categories=["CS"])
    (ws / "my_names.csv").write_text("pinyin,english\nmy_pinyin,my_english\n", encoding="utf-8")
    manifest = scan(root).manifest
    for i, name in enumerate(["preds", "a", "b", "teamA", "teamB", "teamC", "team_a", "team_b", "team_c"]):
        write_synthetic_submission(manifest, ws / name, seed=i, method=f"method-{name}")
    for name in ("b", "teamB"):
        _zip_tree(ws / name, ws / f"{name}.zip")
    archive = _zip_tree(root, ws / "3CAD.zip")
    (ws / "home" / "Downloads").mkdir(parents=True)
    (ws / "home" / "Downloads" / "3CAD.zip").write_bytes(archive.read_bytes())
    tgz = ws / "3CAD.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(root, arcname="3CAD")
    server = DownloadServer().start()
    from threecad.download.resources import get_resource

    server.add_drive(get_resource("3cad-english").drive_id, archive.read_bytes(), style="form")
    server.add_file("/3CAD.tar.gz", tgz.read_bytes())
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    env = {**os.environ, "HOME": str(ws / "home"), "THREECAD_CACHE": str(ws / "cache"),
           "THREECAD_DRIVE_URL": server.drive_url,
           "THREECAD_DRIVE_USERCONTENT_URL": server.base + "/download", "THREECAD_PROGRESS": "none",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(REPO)}
    places = {
        "ROOT": str(root),
        "/tmp/": f"{ws / 'tmp'}/",
        "/data/3CAD": str(ws / "data" / "3CAD"),
        "https://mirror.example": server.base,
        "tcp://10.0.0.5:8786": cluster.scheduler_address,
        "<hex>": hashlib.sha256(archive.read_bytes()).hexdigest(),
        # cost, not paths: the small sample takes minutes here; the tiny one has the same layout
        "--scale small": "--scale tiny",
        "--bootstrap 1000": "--bootstrap 50",
        "n_resamples=1000": "n_resamples=50",
    }
    (ws / "tmp").mkdir()
    try:
        yield Workspace(ws, env, places)
    finally:
        cluster.close()
        server.stop()


def _run_shell(ws: Workspace, command: str) -> str | None:
    """Run one README command; the problem as text, or None."""
    if command.startswith(".venv/bin/python scripts/"):  # a benchmark: minutes at its scale; check it parses
        argv = [sys.executable, str(REPO / command.split()[1]), "--help"]
    else:
        argv = ["bash", "-c", ws.substitute(command)]
    proc = subprocess.run(argv, cwd=ws.cwd, env=ws.env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    if proc.returncode not in (0, 1) or "Traceback" in proc.stderr:
        return f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    if proc.returncode == 1 and not proc.stderr.strip() and not proc.stdout.strip() and ">" not in command:
        return "exit 1 without a word"
    return None


def _run_python(ws: Workspace, code: str) -> str | None:
    prelude = f"ROOT = {ws.places['ROOT']!r}  # the README's ROOT\n"
    proc = subprocess.run([sys.executable, "-c", prelude + ws.substitute(code, keep=("ROOT",))], cwd=ws.cwd, env=ws.env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return None


@pytest.mark.timeout(2400)
def test_readme_runs_as_written(workspace):
    """Every command and snippet, in README order; all failures reported at once."""
    failures, ran = [], 0
    for block in readme_blocks():
        if block.skip:
            continue
        if block.lang == "python":
            if any(key in block.text for key in ELSEWHERE_PY):
                continue
            problem = _run_python(workspace, block.text)
            ran += 1
            if problem:
                failures.append(f"README line {block.line} (python):\n{problem}")
            continue
        for command in _continued(block.text):
            if command.startswith(SETUP_ONLY) or _elsewhere(command):
                continue
            problem = _run_shell(workspace, command)
            ran += 1
            if problem:
                failures.append(f"README line {block.line}: {command}\n{problem}")
    assert ran >= 40
    assert not failures, "\n\n".join(failures)
