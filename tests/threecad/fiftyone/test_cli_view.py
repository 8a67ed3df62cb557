"""``threecad view`` as a user runs it (subprocesses), and the browser check of the app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.threecad.test_cli import loaded_modules

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"


def _env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no database configured; caches and home in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    env.update(HOME=str(tmp_path / "home"), THREECAD_CACHE=str(tmp_path / "cache"))
    return env


def view(tmp_path, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "threecad", "view", *map(str, args)], capture_output=True,
                          text=True, env=_env(tmp_path), timeout=timeout, cwd=REPO)


def test_view_help_and_other_commands_stay_cheap(sample_root):
    assert "fiftyone" not in loaded_modules(["view", "--help"])
    assert "fiftyone" not in loaded_modules(["stats", str(sample_root), "--format", "json"])
    assert "fiftyone" not in loaded_modules(["--help"])


def test_view_no_launch_builds_then_updates(sample_root, sample_preds, tmp_path):
    first = view(tmp_path, sample_root, "--preds", sample_preds, "--categories", "CS", "IS", "--no-launch")
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "private mongod on mongodb://127.0.0.1:" in first.stderr
    assert " added, 0 rebuilt, 0 unchanged" in first.stdout and "samples/s" in first.stdout
    assert "synthetic-demo-worst-false-positives" in first.stdout
    assert (tmp_path / "cache" / "fiftyone" / "db" / "mongod.log").is_file()
    heatmaps = list((tmp_path / "cache" / "fiftyone" / "media").rglob("heatmaps/**/*.png"))
    assert heatmaps
    second = view(tmp_path, sample_root, "--categories", "CS", "IS", "--no-launch")
    assert second.returncode == 0, second.stderr
    assert "(0 added, 0 rebuilt," in second.stdout
    n = int(first.stdout.split(" samples (")[0].rsplit(" ", 1)[1])
    assert f": {n} samples (" in second.stdout  # nothing duplicated
    import psutil

    assert not [p for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "mongod" and str(tmp_path) in " ".join(p.info["cmdline"] or [])]


def test_view_errors_are_messages(sample_root, sample_preds, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = view(tmp_path, sample_root, "--port", port, timeout=60)
    assert busy.returncode == 2 and "the port is in use" in busy.stderr and "Traceback" not in busy.stderr
    assert not (tmp_path / "cache" / "fiftyone" / "db").exists()  # checked before starting anything
    empty = tmp_path / "empty"
    (empty / "Iron_Stator" / "train" / "good").mkdir(parents=True)
    res = view(tmp_path, empty, "--no-launch", "--db-dir", tmp_path / "db")
    assert res.returncode == 2 and "has no test images" in res.stderr and "Traceback" not in res.stderr
    other = view(tmp_path, sample_root, "--split", "train", "--preds", sample_preds, "--no-launch",
                 "--db-dir", tmp_path / "db")
    assert other.returncode == 2 and "--preds needs the test images" in other.stderr


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason=f"{CHROMIUM} is missing ('make chromium' installs Debian's chromium)")
def test_app_shows_masks_and_heatmaps_in_chromium(tmp_path):
    pytest.importorskip("playwright", reason="the 'browser' extra (playwright) is not installed")
    from PIL import Image

    out = tmp_path / "view.png"
    env = _env(tmp_path)
    proc = subprocess.run([sys.executable, "scripts/app_screenshot.py", "--out", str(out), "--categories", "ACC",
                           "CS", "--timeout", "180"], capture_output=True, text=True, env=env, timeout=480, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "app check passed" in proc.stdout
    with Image.open(out) as im:
        assert im.size[0] >= 1000 and np.asarray(im.convert("L")).std() > 10
    assert out.stat().st_size < 1_000_000


def test_view_serves_the_app_and_stops_on_sigterm(sample_root, tmp_path):
    import signal
    import time
    import urllib.request

    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "threecad", "view", str(sample_root), "--categories", "CS",
                             "--port", str(port), "--db-dir", str(tmp_path / "db")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=REPO)
    try:
        deadline = time.monotonic() + 600  # a deadline for a hang, not a speed requirement
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/fiftyone", timeout=2) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, proc.stderr.read() if proc.poll() is not None else "no answer"
        children = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "mongod"]
        assert len(children) == 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"app: http://127.0.0.1:{port}/" in out and "Traceback" not in err
    psutil.wait_procs(children, timeout=60)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)


def test_view_stops_cleanly_on_sigterm_while_the_database_starts(sample_root, tmp_path):
    """The SIGTERM handler is in place before any server starts: a SIGTERM during the database
    start or the build ends the command through its clean-up (exit 0 or 130, never killed by
    the signal) and leaves no mongod behind."""
    import signal

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "threecad", "view", str(sample_root), "--categories", "CS",
                             "--no-launch", "--db-dir", str(tmp_path / "db")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=REPO)
    children: list = []
    try:
        import time

        deadline = time.monotonic() + 600  # a deadline for a hang, not a speed requirement
        while time.monotonic() < deadline and proc.poll() is None and not children:
            try:
                children = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "mongod"]
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        assert children, "mongod never started"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err
    psutil.wait_procs(children, timeout=60)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)
