"""Zipped submissions (issue 14, class 4): checked before extraction, cleaned on any exit, problems named
``sub.zip/<member>``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.eval.test_submission import CS, manifest, write_submission  # noqa: F401
from threecad.errors import UsageError
from threecad.eval import archive
from threecad.eval.archive import submission_folder
from threecad.eval.submission import SubmissionError, load_submission

pytestmark = pytest.mark.timeout(120)


def zip_folder(folder: Path, dest: Path, extra: list[tuple[str, bytes]] = (), *,
               compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", compression) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for name, data in extra:
            zf.writestr(name, data)
    return dest


def leftovers(tmp_dir: Path) -> list[Path]:
    return [p for p in tmp_dir.iterdir() if "threecad-submission" in p.name]


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "tmp"
    d.mkdir()
    return d


def test_a_valid_zip_loads_and_is_cleaned(tmp_path, manifest, work):
    sub = zip_folder(write_submission(tmp_path / "m", manifest), tmp_path / "m.zip")
    with submission_folder(sub, tmp_dir=work) as folder:
        assert load_submission(folder, manifest).meta.method == "m"
        assert leftovers(work)
    assert not leftovers(work)


def test_class4_duplicate_member_name_is_refused(tmp_path, manifest, work):
    preds = write_submission(tmp_path / "m", manifest)
    member = f"{CS}/test/good/000000.npy"
    with pytest.warns(UserWarning, match="Duplicate name"):
        sub = zip_folder(preds, tmp_path / "m.zip", [(member, b"the last copy would win")])
    with pytest.raises(SubmissionError) as info:
        with submission_folder(sub, tmp_dir=work):
            pytest.fail("extracted")
    (problem,) = info.value.problems
    assert problem.kind == "unsafe_member" and problem.path == sub / member
    assert "appears 2 times" in problem.message
    assert not leftovers(work)


def test_class4_names_that_normalise_to_one_path_are_duplicates(tmp_path, work):
    sub = tmp_path / "m.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("a/b.npy", b"1")
        zf.writestr("a//./b.npy", b"2")
        zf.writestr("a\\b.npy", b"3")
    with pytest.raises(SubmissionError, match="unsafe archive") as info:
        with submission_folder(sub, tmp_dir=work):
            pass
    assert {p.message for p in info.value.problems} == {"appears 3 times in the archive (only one copy would be kept)"}


def test_class4_zip_bomb_is_refused_from_declared_sizes_before_extracting(tmp_path, work, monkeypatch):
    monkeypatch.setattr(archive, "RATIO_FLOOR_BYTES", 1 << 20)  # the mechanism, at a small scale
    sub = tmp_path / "bomb.zip"
    with zipfile.ZipFile(sub, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{CS}/test/good/000000.npy", bytes(8 << 20))
    assert sub.stat().st_size < 100_000
    written = []
    import threecad.download.extract as extract

    monkeypatch.setattr(extract, "_copy_limited", lambda *a, **k: written.append(a) or 0)
    with pytest.raises(SubmissionError, match="times its size") as info:
        with submission_folder(sub, tmp_dir=work):
            pass
    assert info.value.problems[0].kind == "bad_archive" and not written and not leftovers(work)


def test_class4_total_size_and_free_space_are_checked_before_extracting(tmp_path, manifest, work, monkeypatch):
    import shutil as shutil_module

    import threecad.download.extract as extract

    sub = zip_folder(write_submission(tmp_path / "m", manifest), tmp_path / "m.zip")
    with pytest.raises(SubmissionError, match="more than the limit"):
        with submission_folder(sub, tmp_dir=work, max_bytes=100):
            pass
    usage = shutil_module.disk_usage(work)
    monkeypatch.setattr(extract.shutil, "disk_usage", lambda p: usage._replace(free=10))
    with pytest.raises(SubmissionError, match="only 10 B is free"):
        with submission_folder(sub, tmp_dir=work):
            pass
    assert not leftovers(work)


def test_class4_real_sizes_are_enforced_while_extracting(tmp_path, work):
    """A member whose data is larger than its header says stops the extraction."""
    sub = tmp_path / "liar.zip"
    payload = bytes(200_000)
    with zipfile.ZipFile(sub, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{CS}/test/good/000000.npy", payload)
    data = bytearray(sub.read_bytes())
    declared = (200_000).to_bytes(4, "little")
    # rewrite the uncompressed size in the local header and the central directory to 10 bytes
    for start in (data.find(b"PK\x03\x04") + 22, data.find(b"PK\x01\x02") + 24):
        assert data[start:start + 4] == declared
        data[start:start + 4] = (10).to_bytes(4, "little")
    sub.write_bytes(bytes(data))
    with pytest.raises(SubmissionError, match="more data than its header says|damaged"):
        with submission_folder(sub, tmp_dir=work):
            pass
    assert not leftovers(work)


def test_class4_too_many_members(tmp_path, work, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    sub = tmp_path / "many.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for i in range(6):
            zf.writestr(f"{CS}/test/good/{i:06d}.npy", b"")
    with pytest.raises(SubmissionError, match="6 members, more than the limit of 5"):
        with submission_folder(sub, tmp_dir=work):
            pass


def test_class4_problems_inside_a_zip_name_the_member(tmp_path, manifest, work):
    preds = write_submission(tmp_path / "m", manifest)
    (preds / CS / "test" / "good" / "000000.npy").write_bytes(b"not numpy")
    (preds / CS / "test" / "good" / "zzz.txt").write_text("x")
    sub = zip_folder(preds, tmp_path / "m.zip")
    with pytest.raises(SubmissionError) as info:
        with submission_folder(sub, tmp_dir=work) as folder:
            load_submission(folder, manifest, check_contents=True)
    paths = sorted(str(p.path) for p in info.value.problems)
    assert paths == [str(sub / CS / "test" / "good" / "000000.npy"), str(sub / CS / "test" / "good" / "zzz.txt")]
    assert str(work) not in str(info.value) and str(sub) in str(info.value).splitlines()[0]


def test_class4_non_regular_or_missing_zip_is_a_usage_error(tmp_path, work):
    os.mkfifo(tmp_path / "pipe.zip")
    for p in (tmp_path / "pipe.zip", tmp_path / "absent.zip"):
        with pytest.raises(UsageError):
            with submission_folder(p, tmp_dir=work):
                pass


def test_class4_stale_extraction_of_a_killed_run_is_swept(tmp_path, manifest, work):
    stale = Path(tempfile.mkdtemp(prefix=".threecad-submission.", suffix=".tmpdir", dir=work))
    (stale / "x.npy").write_bytes(b"x")
    os.utime(stale, (0, 0))
    sub = zip_folder(write_submission(tmp_path / "m", manifest), tmp_path / "m.zip")
    with submission_folder(sub, tmp_dir=work):
        assert not stale.exists()


# The child starts as a command typed at a terminal does: signals unblocked, SIGINT raising
# KeyboardInterrupt. A suite started in the background by a non-interactive shell (``make
# test &``, as CI runners may) inherits SIGINT ignored, and so would the child, which then
# slept through the signal. It waits in short sleeps: a signal that lands on another thread
# (e.g. OpenBLAS's) or just before a sleep is acted on at the next bytecode boundary.
_SCRIPT = """
import signal, sys, time
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
from threecad.eval.archive import submission_folder
with submission_folder(sys.argv[1], tmp_dir=sys.argv[2]) as folder:
    print(folder, flush=True)
    for _ in range(6000):
        time.sleep(0.1)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_class4_sigterm_and_sigint_during_eval_of_a_zip_remove_the_extraction(tmp_path, manifest, work, sig):
    sub = zip_folder(write_submission(tmp_path / "m", manifest), tmp_path / "m.zip")
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(sub), str(work)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        folder = Path(proc.stdout.readline().strip())
        assert folder.is_dir() and leftovers(work)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not folder.exists() and not leftovers(work), proc.stderr.read()


def test_class4_dataset_inspector_refuses_duplicates_too(tmp_path):
    from threecad.download.errors import UnsafeArchiveError
    from threecad.download.extract import inspect_archive

    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", b"1")
        zf.writestr("dir/", b"")
        with pytest.warns(UserWarning):
            zf.writestr("dir/", b"")  # a repeated folder entry is harmless
            zf.writestr("a.txt", b"2")
    with pytest.raises(UnsafeArchiveError) as info:
        inspect_archive(path)
    assert info.value.members == [("a.txt", "appears 2 times in the archive (only one copy would be kept)")]
