"""Hostile and broken submissions, one test per class of issue 14 (1, 2, 3, 9; class 4 is test_archive.py).

Every case must end in the project's own error naming the file and the problem (never a
traceback, a hang, or a read of a refused file), and a leaderboard must still score the
other teams.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.eval.test_submission import CS, IS, load_fails, manifest, write_submission  # noqa: F401 (a fixture)
from threecad.errors import BadFileError, DataError, ThreecadError
from threecad.eval import format as fmt
from threecad.eval.mapio import MapReadError, read_map
from threecad.eval.submission import SubmissionError, load_submission, validate_submission

pytestmark = pytest.mark.timeout(120)  # a hang is a failure, not a stuck CI


def first_map(preds: Path, category: str = CS) -> Path:
    return sorted((preds / category / "test").rglob("*.npy"))[0]


def npy_bytes(header: dict, version: tuple[int, int] = (1, 0), data: bytes = b"") -> bytes:
    """An .npy file with an arbitrary header (numpy.save would refuse to write most of them)."""
    text = repr(header).encode("latin1" if version != (3, 0) else "utf8", "backslashreplace")
    size = 2 if version == (1, 0) else 4
    pad = (-(6 + 2 + size + len(text) + 1)) % 64
    text = text + b" " * pad + b"\n"
    length = struct.pack("<H" if size == 2 else "<I", len(text))
    return b"\x93NUMPY" + bytes(version) + length + text + data


def tiff_bytes(width: int, height: int, *, bits: int = 32, sample_format: int = 3, data: bytes = b"\0" * 16,
               compression: int = 1) -> bytes:
    """A little-endian single-strip TIFF whose header claims ``width`` x ``height``."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, compression), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data)), (339, 3, 1, sample_format)]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = b"II*\0" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    return out + b"\0\0\0\0" + data


def png_bytes(width: int, height: int, *, bit_depth: int = 8, colour: int = 0, body: bytes = b"") -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height``, then ``body`` (no valid data)."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + body


def kinds(problems) -> set[str]:
    return {p.kind for p in problems}


# ---------------------------------------------------------------- class 1: non-regular files

def test_class1_fifo_map_is_not_a_regular_file(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    victim = first_map(preds)
    victim.unlink()
    os.mkfifo(victim)
    with pytest.raises(MapReadError) as info:  # the reader itself never blocks on it
        read_map(victim)
    assert info.value.kind == fmt.NOT_REGULAR_FILE and "not a regular file (a named pipe" in str(info.value)
    assert isinstance(info.value, DataError)
    for check in (False, True):  # structural scan and the full read both report it, never open it
        got = load_fails(preds, manifest, check_contents=check)
        assert [p.path for p in got[fmt.NOT_REGULAR_FILE]] == [victim]
        assert "missing_map" in got  # listed with the other problems: its image has no usable map


def test_class1_fifo_scores_and_metadata_are_listed_with_other_problems(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    for name in (fmt.SCORES_FILE, fmt.META_FILE):
        os.mkfifo(preds / name)
    first_map(preds).unlink()
    got = load_fails(preds, manifest)
    assert sorted(p.path.name for p in got[fmt.NOT_REGULAR_FILE]) == [fmt.SCORES_FILE, fmt.META_FILE]
    assert "missing_map" in got
    with pytest.raises(SubmissionError):
        validate_submission(preds, manifest, workers=1)


def test_class1_fifo_or_device_at_the_root_and_in_folders(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    os.mkfifo(preds / "notes.txt")
    os.mkfifo(preds / CS / "test" / "good" / "stray.npy")
    os.symlink("/dev/null", preds / IS / "test" / "good" / "000000.png")
    os.symlink("../../../notes.txt", preds / IS / "test" / "good" / "000000.tif")  # inside, to the FIFO
    got = load_fails(preds, manifest, check_contents=True)
    names = sorted(p.path.name for p in got[fmt.NOT_REGULAR_FILE])
    assert names == ["000000.tif", "notes.txt", "stray.npy"]
    assert all("not a regular file (a named pipe (FIFO))" == p.message for p in got[fmt.NOT_REGULAR_FILE])
    assert [p.path.name for p in got["link_outside"]] == ["000000.png"]  # /dev/null: outside, never opened


@pytest.mark.parametrize("where", ["map", "category", "defect_folder", "scores", "metadata"])
def test_class1_symlink_loop_is_reported_not_a_crash(tmp_path, manifest, where):
    preds = write_submission(tmp_path / "sub", manifest)
    target = {"map": first_map(preds), "category": preds / "Iron_Stator",
              "defect_folder": preds / CS / "test" / "broken_wire", "scores": preds / fmt.SCORES_FILE,
              "metadata": preds / fmt.META_FILE}[where]
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.symlink(target.name, target)  # points at itself: ELOOP
    got = load_fails(preds, manifest, check_contents=True)
    loops = got[fmt.NOT_REGULAR_FILE]
    assert [p.path for p in loops] == [target] and "symbolic link loop" in loops[0].message
    if where == "map":
        with pytest.raises(MapReadError, match="symbolic link loop"):
            read_map(target)


def test_class1_cli_eval_and_leaderboard_do_not_hang_on_a_fifo(tmp_path, manifest, tree, capsys):
    from threecad.cli import main

    preds = write_submission(tmp_path / "sub", manifest)
    os.mkfifo(preds / fmt.SCORES_FILE)
    assert main(["eval", str(preds), "--data-root", str(tree.root), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not a regular file" in err and "Traceback" not in err
    assert not (preds / "results").exists()
    good = write_submission(tmp_path / "good", manifest)
    assert main(["leaderboard", str(good), str(preds), "--data-root", str(tree.root), "--out", str(tmp_path / "lb"),
                 "--no-progress"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert sorted(e["status"] for e in board["entries"]) == ["invalid", "scored"]


# ---------------------------------------------------------------- class 2: limits from headers

@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_class2_npy_of_every_header_version_is_checked_before_reading(tmp_path, version):
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (60000, 60000)}, version))
    with pytest.raises(MapReadError, match="more than the limit") as info:
        read_map(path)
    assert info.value.kind == "bad_map"
    ok = tmp_path / "ok.npy"  # and a valid file of that version still loads
    arr = np.arange(12, dtype="<f4").reshape(3, 4)
    ok.write_bytes(npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (3, 4)}, version, arr.tobytes()))
    np.testing.assert_array_equal(read_map(ok), arr)
    fortran = tmp_path / "f.npy"
    fortran.write_bytes(npy_bytes({"descr": "<f4", "fortran_order": True, "shape": (3, 4)}, version,
                                  np.asfortranarray(arr).tobytes(order="F")))
    np.testing.assert_array_equal(read_map(fortran), arr)


@pytest.mark.parametrize("descr, words", [
    ([("a", "|V1000000000")], "structured dtype"),
    ("|S1000000000", "unsupported dtype"),
    ("|V999999999", "unsupported dtype"),
    ("(100000,100000)<f8", "dtype"),
    ("<U99999999", "unsupported dtype"),
    ("|O", "pickle"),
    ("<c16", "unsupported dtype"),
    ("not a dtype", "unknown dtype"),
])
def test_class2_npy_structured_or_bytes_dtype_is_refused_from_the_header(tmp_path, descr, words):
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes({"descr": descr, "fortran_order": False, "shape": (1000, 1000)}))
    with pytest.raises(MapReadError, match=words):
        read_map(path)


def test_class2_npy_with_less_data_than_its_header_announces(tmp_path):
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (4000, 4000)}, data=b"\0" * 64))
    with pytest.raises(MapReadError, match="truncated .npy data") as info:
        read_map(path)
    assert info.value.kind == "unreadable_map"


@pytest.mark.parametrize("header", [
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'extra': 1}",
    b"{'descr': '<f4', 'fortran_order': 'no', 'shape': (3, 4)}",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4)}",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4]}",
    b"__import__('os').system('echo pwned')",
    b"(" * 5000 + b")" * 5000,
])
def test_class2_npy_header_is_parsed_as_a_literal_only(tmp_path, header):
    path = tmp_path / "m.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with pytest.raises(MapReadError, match="header"):
        read_map(path)


def test_class2_deeply_nested_submission_json(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    (preds / fmt.META_FILE).write_text('{"method": "m", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    got = load_fails(preds, manifest)
    assert "nested more than" in got["bad_metadata"][0].message
    (preds / fmt.META_FILE).write_text('{"method": "m", "x": "' + "[" * 100_000 + '"}')  # brackets in a string
    assert load_submission(preds, manifest).meta.method == "m"


def test_class2_oversized_scores_and_metadata_are_not_read(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    with open(preds / fmt.SCORES_FILE, "wb") as f:  # sparse: no disk used
        f.truncate(fmt.MAX_SCORES_BYTES + 1)
    with open(preds / fmt.META_FILE, "wb") as f:
        f.truncate(fmt.MAX_META_BYTES + 1)
    got = load_fails(preds, manifest)
    assert "more than the limit" in got["bad_scores"][0].message
    assert "more than the limit" in got["bad_metadata"][0].message


@pytest.mark.parametrize("make, words", [
    (lambda: png_bytes(60000, 60000), "more than the limit"),
    (lambda: png_bytes(0, 10), "empty map"),
    (lambda: png_bytes(8000, 8000, body=b"\0" * 100), "more than a file of"),
    (lambda: png_bytes(100, 100, body=b"\0" * 100), "cannot decode PNG"),
    (lambda: png_bytes(10, 10, bit_depth=4), "4-bit grey PNG"),
    (lambda: tiff_bytes(60000, 60000), "more than the limit"),
    (lambda: tiff_bytes(4000, 4000), "more than the file holds"),
    (lambda: tiff_bytes(4000, 4000, compression=8), "more than the file holds"),
    (lambda: tiff_bytes(4000, 4000, compression=5), "more than the file holds"),
    (lambda: tiff_bytes(40, 40, compression=8), "cannot decode TIFF"),
    (lambda: tiff_bytes(10, 10, bits=64), "unsupported TIFF sample type|cannot decode"),
])
def test_class2_png_and_tiff_with_lying_headers(tmp_path, make, words):
    data = make()
    path = tmp_path / ("m.png" if data.startswith(b"\x89PNG") else "m.tif")
    path.write_bytes(data)
    with pytest.raises(MapReadError, match=words):
        read_map(path)


def test_class2_oversized_map_file_is_refused_from_stat(tmp_path, monkeypatch):
    import threecad.eval.mapio as mapio

    monkeypatch.setattr(mapio, "MAX_MAP_FILE_BYTES", 1000)
    path = tmp_path / "m.npy"
    np.save(path, np.zeros((40, 40), np.float32))
    with pytest.raises(MapReadError, match="more than the limit of 1,000"):
        read_map(path)


# ---------------------------------------------------------------- class 3: refused files are never read

@pytest.mark.parametrize("name", [fmt.SCORES_FILE, fmt.META_FILE, "map"])
def test_class3_link_outside_is_reported_and_never_opened(tmp_path, manifest, monkeypatch, name):
    import threecad.eval.format as format_module
    import threecad.eval.mapio as mapio
    import threecad.eval.submission as submission

    preds = write_submission(tmp_path / "sub", manifest)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE,1\nimage,score\n")
    link = first_map(preds) if name == "map" else preds / name
    if link.exists():
        link.unlink()
    os.symlink(secret, link)
    opened: list[str] = []
    real = format_module.open_regular

    def spy(path, *args, **kwargs):
        opened.append(os.path.realpath(path))
        return real(path, *args, **kwargs)

    for module in (format_module, mapio):
        monkeypatch.setattr(module, "open_regular", spy)
    monkeypatch.setattr(submission, "read_limited",
                        lambda path, *a, **k: (opened.append(os.path.realpath(path)), fmt.read_limited(path, *a, **k))[1])
    with pytest.raises(SubmissionError) as info:
        validate_submission(preds, manifest, workers=1)
    assert [p.path for p in info.value.problems if p.kind == "link_outside"] == [link]
    assert "TOP-SECRET" not in str(info.value)
    assert all("TOP-SECRET" not in p.message for p in info.value.problems)
    assert str(secret) not in opened
    assert opened  # the spy saw the other files: the check can fail


# ---------------------------------------------------------------- class 9: one bad submission, one invalid row

def test_class9_one_bad_submission_never_stops_a_leaderboard(tmp_path, manifest, tree):
    from threecad.eval.leaderboard import score_leaderboard, write_leaderboard

    subs = {}
    subs["good"] = write_submission(tmp_path / "good", manifest)
    long_name = "A very | long `method` name\nwith a newline " + "x" * 400
    subs["long"] = write_submission(tmp_path / "long", manifest)
    (subs["long"] / fmt.META_FILE).write_text(json.dumps({"format_version": 1, "method": long_name}))
    subs["clash"] = write_submission(tmp_path / "clash", manifest)  # its folder would take the table's name
    (subs["clash"] / fmt.META_FILE).write_text(json.dumps({"method": "leaderboard.md"}))
    subs["fifo"] = write_submission(tmp_path / "fifo", manifest)
    os.mkfifo(subs["fifo"] / fmt.SCORES_FILE)
    subs["npy3"] = write_submission(tmp_path / "npy3", manifest)
    first_map(subs["npy3"]).write_bytes(npy_bytes({"descr": "<f4", "fortran_order": False,
                                                   "shape": (90000, 90000)}, (3, 0)))
    subs["nested"] = write_submission(tmp_path / "nested", manifest)
    (subs["nested"] / fmt.META_FILE).write_text("[" * 200_000)
    subs["loop"] = write_submission(tmp_path / "loop", manifest)
    os.symlink("loop", subs["loop"] / CS / "test" / "good" / "loop")
    dup = tmp_path / "dup.zip"
    with zipfile.ZipFile(dup, "w") as zf:
        for p in sorted(subs["good"].rglob("*.npy")):
            zf.write(p, p.relative_to(subs["good"]).as_posix())
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr(first_map(subs["good"]).relative_to(subs["good"]).as_posix(), b"second copy")
    subs["dup"] = dup

    board = score_leaderboard([str(p) for p in subs.values()], tree.root, workers=1, command=["t"])
    status = {Path(e.source).name: e.status for e in board.entries}
    assert status == {"good": "scored", "long": "scored", "clash": "scored", "fifo": "invalid", "npy3": "invalid",
                      "nested": "invalid", "loop": "invalid", "dup.zip": "invalid"}
    by = {Path(e.source).name: e for e in board.entries}
    assert fmt.NOT_REGULAR_FILE in kinds(by["fifo"].problems) and "bad_map" in kinds(by["npy3"].problems)
    assert "bad_metadata" in kinds(by["nested"].problems) and fmt.NOT_REGULAR_FILE in kinds(by["loop"].problems)
    assert "unsafe_member" in kinds(by["dup.zip"].problems)
    paths = write_leaderboard(board, tmp_path / "lb")
    assert all(len(p.name) <= 255 and len(p.parent.name) <= 255 for p in paths)
    assert by["long"].results is not None and len(by["long"].slug) <= 64
    # entries are named after their folder (the method beside it): nothing takes the table's name
    assert (tmp_path / "lb" / "leaderboard.md").is_file() and by["clash"].slug == "clash"
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| long (A very")]
    assert rows and all(ln.count(" | ") == rows[0].count(" | ") for ln in rows)  # one cell, table intact
    assert "\\|" in rows[0] and "\n" not in rows[0]


def test_class9_unexpected_reader_failure_is_an_invalid_row(tmp_path, manifest, tree, monkeypatch):
    import threecad.eval.leaderboard as lb
    from threecad.eval.api import Evaluator

    good = write_submission(tmp_path / "good", manifest)
    bad = write_submission(tmp_path / "bad", manifest)
    real = Evaluator.validate

    def flaky(self, folder, *a, **k):
        if Path(folder).name == "bad":
            raise OSError(5, "Input/output error")
        return real(self, folder, *a, **k)

    monkeypatch.setattr(Evaluator, "validate", flaky)
    board = lb.score_leaderboard([str(good), str(bad)], tree.root, workers=1, command=["t"])
    assert {Path(e.source).name: e.status for e in board.entries} == {"good": "scored", "bad": "invalid"}
    assert "Input/output error" in next(e.reason for e in board.entries if e.status == "invalid")


def test_every_reader_error_is_a_threecad_error(tmp_path):
    path = tmp_path / "m.npy"
    path.write_bytes(b"junk")
    with pytest.raises(ThreecadError):
        read_map(path)
    assert issubclass(MapReadError, BadFileError) and issubclass(MapReadError, ValueError)


def test_class9_non_utf8_file_name_and_method_do_not_crash_the_leaderboard_files(tmp_path, manifest, tree):
    from threecad.eval.leaderboard import score_leaderboard, write_leaderboard

    good = write_submission(tmp_path / "good", manifest)
    bad = write_submission(tmp_path / "bad", manifest)
    with open(os.path.join(os.fsencode(bad / CS / "test" / "good"), b"\xff\xfe.npy"), "wb") as f:
        f.write(b"x")
    (bad / fmt.META_FILE).write_bytes(b'{"method": "caf\\udcff"}')  # valid JSON, a lone surrogate
    board = score_leaderboard([str(good), str(bad)], tree.root, workers=1, command=["t"])
    by = {Path(e.source).name: e for e in board.entries}
    assert by["good"].status == "scored" and by["bad"].status == "invalid"
    assert {"extra_map", "bad_metadata"} <= kinds(by["bad"].problems)
    paths = write_leaderboard(board, tmp_path / "lb")
    md = (tmp_path / "lb" / "leaderboard.md").read_text(encoding="utf-8")
    assert "\\udcff\\udcfe.npy" in md and len(paths) >= 4


def test_class3_links_in_ignored_places_are_not_problems(tmp_path, manifest):
    preds = write_submission(tmp_path / "sub", manifest)
    (preds / "results").mkdir()
    os.symlink(tmp_path, preds / "results" / "elsewhere")
    os.symlink(tmp_path, preds / ".cache")
    assert load_submission(preds, manifest).categories == (CS, IS)
