import os
import stat
import time

import pytest

from threecad.atomic import atomic_folder, atomic_path, sweep_stale, write_text_atomic


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_get_the_umask_not_0600(tmp_path, umask_027):
    write_text_atomic(tmp_path / "a.json", "{}")
    assert _mode(tmp_path / "a.json") == 0o640


def test_folder_set_is_published_whole_with_umask(tmp_path, umask_027):
    out = tmp_path / "results"
    with atomic_folder(out) as tmp:
        (tmp / "results.json").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.csv").write_text("x")
        assert not out.exists()
    assert (out / "results.json").read_text() == "new"
    assert _mode(out) == 0o750 and _mode(out / "results.json") == 0o640 and _mode(out / "sub" / "x.csv") == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_folder_replaces_an_old_set_and_keeps_it_on_error(tmp_path):
    out = tmp_path / "results"
    with atomic_folder(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("boom")
    assert (out / "a").read_text() == "1"
    with atomic_folder(out) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_atomic_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError):
        with atomic_folder(tmp_path / "f"):
            pass


def test_sweep_removes_only_stale_temporaries(tmp_path):
    old = tmp_path / ".results.json.abc.part"
    old.write_text("x")
    fresh = tmp_path / ".results.json.def.part"
    fresh.write_text("y")
    keep = tmp_path / ".hidden"
    keep.write_text("z")
    past = time.time() - 7200
    os.utime(old, (past, past))
    removed = sweep_stale(tmp_path)
    assert removed == [old]
    assert fresh.exists() and keep.exists()


def test_atomic_path_removes_the_temporary_on_error(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_a_new_write_sweeps_what_a_killed_write_of_the_same_file_left(tmp_path):
    left = tmp_path / ".results.json.abc123.part"   # as a kill -9 inside atomic_path leaves it
    left.write_text("partial")
    past = time.time() - 7200
    os.utime(left, (past, past))
    other = tmp_path / ".other.json.abc123.part"
    other.write_text("another file's, recent")
    write_text_atomic(tmp_path / "results.json", "{}")
    assert not left.exists() and other.exists()
