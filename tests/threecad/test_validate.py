"""``threecad validate``: every check sees exactly the problem planted in a copy of the sample."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from threecad.errors import Severity, UsageError
from threecad.manifest import scan
from threecad.validate import validate
from threecad.validate.duplicates import hamming, hash_neighbours, pairs_within
from threecad.validate.images import check_png, perceptual_hash
from threecad.validate.pixels import compare_thumbnails, descriptors, nearest_pairs, thumbnail

CATS = ["AI", "CS"]
AI, CS = "Aluminum_Ipad", "Copper_Stator"


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory) -> Path:
    """A tiny sample of two categories (one grey, one RGB), built once per session."""
    from threecad.sample import write_sample

    root = tmp_path_factory.mktemp("validate") / "3cad"
    write_sample(root, seed=0, scale="tiny", categories=CATS)
    return root


@pytest.fixture
def root(small_tree, tmp_path) -> Path:
    """A private copy of the two-category sample, to plant one problem in."""
    dst = tmp_path / "tree"
    shutil.copytree(small_tree, dst)
    return dst


@pytest.fixture(scope="session")
def clean_report(small_tree):
    return validate(small_tree, workers=2)


def found(report, *, errors_only: bool = False) -> set[tuple[str, str, str]]:
    """(kind, severity, path) of every problem."""
    return {(p.kind, p.severity.value, str(p.path)) for p in report.problems
            if p.is_error or not errors_only}


def only(report, kind: str, severity: str, *paths: Path) -> None:
    """The report holds exactly these problems and nothing else."""
    assert found(report) == {(kind, severity, str(p)) for p in paths}, [p.to_dict() for p in report.problems]


def rows(root: Path):
    return scan(root, read_headers=False).manifest


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def one_mask_image(root: Path, category: str = AI):
    m = rows(root)
    sel = m[(m["category"] == category) & (m["label"] == "defect") & (m["mask_paths"].map(len) == 1)]
    rec = sel.iloc[0]
    return Path(rec["image_path"]), Path(rec["mask_paths"][0])


# --- the clean sample ------------------------------------------------------------------------

def test_clean_sample_has_no_problems(clean_report, small_tree):
    assert clean_report.problems == []
    assert clean_report.ok and clean_report.exit_code == 0
    assert clean_report.summary["images"] == len(rows(small_tree))
    assert clean_report.summary["errors"] == clean_report.summary["warnings"] == 0
    assert set(clean_report.checks) >= {"structure", "pairing", "masks", "images", "duplicates",
                                        "near_duplicates"}
    assert "counts" not in clean_report.checks  # a subset: nothing to compare
    # Closest pairs are shown even though none is a copy: the sample holds distinct shots of
    # one part (a few bits apart by hash), which the pixel comparison tells apart.
    pairs = clean_report.closest_pairs
    assert pairs and all(p.verdict == "distinct" for p in pairs)
    assert min(p.distance for p in pairs) <= 16
    assert [p.distance for p in pairs] == sorted(p.distance for p in pairs)
    d = json.loads(json.dumps(clean_report.to_dict()))
    assert set(d) >= {"root", "summary", "problems", "checks", "closest_pairs"}
    assert d["closest_pairs"][0]["a"] and d["closest_pairs"][0]["b"]


def test_full_tiny_sample_is_valid_with_auto(sample_root):
    """All eight categories, but a sample: auto does not compare counts; no errors, no near-duplicates."""
    report = validate(sample_root, workers=2)
    assert report.problems == [], [p.to_dict() for p in report.problems]
    assert "counts" not in report.checks
    assert report.summary["published_comparison"] is False


# --- structure -------------------------------------------------------------------------------

def test_unknown_folder(root):
    extra = root / "Backup"
    write(extra / "000001.png", np.zeros((8, 8)))
    report = validate(root, workers=2)
    only(report, "unknown_folder", "warning", extra)
    assert "1 .png file" in report.problems[0].message
    assert report.exit_code == 0


def test_image_outside_layout(root):
    stray = root / AI / "000123.png"
    shutil.copy(next((root / AI / "train" / "good").glob("*.png")), stray)
    report = validate(root, workers=2)
    only(report, "unexpected_file", "warning", stray)


def test_hidden_files_are_ignored(root):
    (root / ".DS_Store").write_bytes(b"junk")
    (root / AI / "train" / "good" / "._000000.png").write_bytes(b"junk")
    assert validate(root, workers=2).problems == []


def test_missing_categories_only_with_expect_published(root):
    assert not [p for p in validate(root, workers=2).problems if p.kind == "missing_category"]
    report = validate(root, expect="published", workers=2, near_duplicates=False)
    missing = {str(p.path) for p in report.problems if p.kind == "missing_category"}
    from threecad.categories import CATEGORIES

    assert missing == {str(root / c.folder) for c in CATEGORIES if c.code not in CATS}
    assert {p.kind for p in report.problems} == {"missing_category", "count_mismatch"}
    assert report.exit_code == 1


def test_count_mismatch_with_expect_published(root, monkeypatch):
    import threecad.stats as stats
    from threecad.categories import CATEGORIES

    m = rows(root)
    ai = m[m["category"] == AI]
    test = ai[ai["split"] == "test"]
    fake = dataclasses.replace(
        next(c for c in CATEGORIES if c.code == "AI"), train=int((ai["split"] == "train").sum()),
        test=len(test), test_good=int((test["label"] == "good").sum()),
        test_defect=int((test["label"] == "defect").sum()))
    monkeypatch.setattr(stats, "CATEGORIES", tuple(fake if c.code == "AI" else c for c in CATEGORIES))

    report = validate(root, categories=CATS, expect="published", workers=2, near_duplicates=False)
    only(report, "count_mismatch", "error", root / CS)  # AI matches the (patched) table
    assert "published 409" in report.problems[0].message

    next((root / AI / "train" / "good").glob("*.png")).unlink()
    report = validate(root, categories=CATS, expect="published", workers=2, near_duplicates=False)
    only(report, "count_mismatch", "error", root / AI, root / CS)
    msg = next(p.message for p in report.problems if p.path == root / AI)
    assert f"train {fake.train - 1} (published {fake.train})" in msg


# --- pairing ---------------------------------------------------------------------------------

def test_mask_without_image(root):
    _, mask = one_mask_image(root)
    orphan = mask.with_name("000777.png")
    shutil.copy(mask, orphan)
    only(validate(root, workers=2), "mask_without_image", "error", orphan)


def test_defective_image_without_mask(root):
    image, mask = one_mask_image(root)
    mask.unlink()
    only(validate(root, workers=2), "missing_mask", "error", image)


def test_mask_for_good_image(root):
    _, mask = one_mask_image(root)
    good = sorted((root / AI / "test" / "good").glob("*.png"))[0]
    stray = mask.with_name(good.name)
    shutil.copy(mask, stray)
    only(validate(root, workers=2), "mask_for_good", "error", stray)


# --- masks -----------------------------------------------------------------------------------

def test_mask_size_mismatch(root):
    _, mask = one_mask_image(root)
    write(mask, read(mask)[:-3])
    only(validate(root, workers=2), "mask_size_mismatch", "error", mask)


def test_three_channel_mask(root):
    _, mask = one_mask_image(root)
    m = read(mask)
    write(mask, np.stack([m, m, m], axis=-1))
    only(validate(root, workers=2), "mask_channels", "error", mask)


def test_mask_with_odd_values_is_a_warning(root):
    _, mask = one_mask_image(root)
    m = read(mask).copy()
    ys, xs = np.nonzero(m)
    m[ys[: len(ys) // 2], xs[: len(xs) // 2]] = 128
    write(mask, m)
    report = validate(root, workers=2)
    only(report, "mask_values", "warning", mask)
    assert report.exit_code == 0


def test_empty_mask(root):
    _, mask = one_mask_image(root)
    write(mask, np.zeros_like(read(mask)))
    only(validate(root, workers=2), "empty_mask", "error", mask)


def test_truncated_mask(root):
    _, mask = one_mask_image(root)
    data = mask.read_bytes()
    mask.write_bytes(data[: len(data) // 2])
    only(validate(root, workers=2), "truncated_mask", "error", mask)


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", ["half", "no_iend"])
def test_truncated_image(root, cut):
    image = sorted((root / CS / "train" / "good").glob("*.png"))[0]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if cut == "half" else data[:-12])
    report = validate(root, workers=2)
    only(report, "truncated_image", "error", image)
    assert "cut short" in report.problems[0].message


def test_truncated_defective_image_keeps_its_mask_checks_quiet(root):
    image, _ = one_mask_image(root, CS)
    data = image.read_bytes()
    image.write_bytes(data[:-12])
    only(validate(root, workers=2), "truncated_image", "error", image)


def test_corrupt_image_crc(root):
    image = sorted((root / AI / "train" / "good").glob("*.png"))[0]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    only(validate(root, workers=2), "corrupt_image", "error", image)


def test_image_size_outside_published_range(root):
    image = sorted((root / AI / "train" / "good").glob("*.png"))[0]
    a = read(image)
    write(image, cv2.resize(a, (a.shape[1], 700)))  # AI height is 760-1024
    report = validate(root, workers=2)
    only(report, "image_size", "warning", image)
    assert "700x" in report.problems[0].message


# --- duplicates ------------------------------------------------------------------------------

def test_byte_identical_duplicate_within_test(root):
    src = sorted((root / AI / "test" / "good").glob("*.png"))[0]
    copy = src.with_name("000090.png")
    shutil.copy(src, copy)
    report = validate(root, workers=2)
    only(report, "duplicate", "error", copy)
    assert src.name in report.problems[0].message


def test_leakage_train_copied_into_test(root):
    src = sorted((root / AI / "train" / "good").glob("*.png"))[0]
    copy = root / AI / "test" / "good" / "000091.png"
    shutil.copy(src, copy)
    report = validate(root, workers=2)
    only(report, "leakage", "error", copy)
    assert "LEAKAGE" in report.problems[0].message and f"train/good/{src.name}" in report.problems[0].message


def _noisy(a: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a.astype(np.int16) + rng.normal(0, 4, a.shape).round(), 0, 255).astype(np.uint8)


def _jpeg_like(a: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(a, (3, 3), 0)
    ok, buf = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _resized(a: np.ndarray) -> np.ndarray:
    return cv2.resize(a, (a.shape[1] * 3 // 4, a.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)


def _cropped(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return a[h // 30:h - h // 60, w // 60:w - w // 30]


@pytest.mark.parametrize("change", [_noisy, _jpeg_like, _resized, _cropped])
def test_near_duplicate_is_a_warning(root, change):
    src = sorted((root / CS / "test" / "good").glob("*.png"))[0]
    copy = src.with_name("000092.png")
    write(copy, change(read(src)))
    report = validate(root, workers=2)
    found_kinds = {(p.kind, str(p.path)) for p in report.problems}
    assert ("near_duplicate", str(copy)) in found_kinds, [p.to_dict() for p in report.problems]
    assert {k for k, _ in found_kinds} <= {"near_duplicate", "image_size"}  # a resize may leave the range
    assert report.exit_code == 0
    message = next(p.message for p in report.problems if p.kind == "near_duplicate")
    assert "perceptual-hash distance" in message and "grey levels" in message and src.name in message


def test_distinct_shots_of_one_part_are_not_copies(tmp_path):
    """The sample's re-shot parts (same part, sub-pixel shift, other light, other defects)."""
    from threecad.sample import write_sample

    truth = write_sample(tmp_path / "s", seed=1, scale="tiny", categories=["ACC", "IS"])
    shots = [i for i in truth.images if i.same_part_as]
    assert len(shots) == 4
    for img in shots:
        a = thumbnail(cv2.imread(str(truth.root / img.path), cv2.IMREAD_UNCHANGED))
        b = thumbnail(cv2.imread(str(truth.root / img.same_part_as), cv2.IMREAD_UNCHANGED))
        assert hamming(perceptual_hash(a), perceptual_hash(b)) <= 48  # look-alikes (median of distinct parts ~126)
        assert not compare_thumbnails(a, b).copy
        assert compare_thumbnails(a, a).copy


def test_near_leakage(root):
    src = sorted((root / AI / "train" / "good").glob("*.png"))[0]
    copy = root / AI / "test" / "good" / "000093.png"
    write(copy, _noisy(read(src)))
    only(validate(root, workers=2), "near_leakage", "warning", copy)


def test_no_near_duplicates_option(root):
    src = sorted((root / CS / "test" / "good").glob("*.png"))[0]
    write(src.with_name("000094.png"), _noisy(read(src)))
    report = validate(root, near_duplicates=False, workers=1)
    assert report.problems == [] and report.closest_pairs == []
    assert "near_duplicates" not in report.checks


def test_download_record_is_information(root):
    record = {"resource": "3cad-english", "archive": "3CAD.zip", "sha256": "ab" * 32}
    (root / ".threecad-download.json").write_text(json.dumps(record))
    report = validate(root, workers=2)
    assert report.problems == []
    assert report.download_record["resource"] == "3cad-english"
    assert any("3CAD.zip" in n for n in report.notes)


def test_bad_options_are_usage_errors(root):
    with pytest.raises(UsageError):
        validate(root, workers=0)
    with pytest.raises(UsageError):
        validate(root, expect="maybe")
    with pytest.raises(UsageError):
        validate(root / "nope")


# --- building blocks -------------------------------------------------------------------------

def test_check_png_structure():
    ok, buf = cv2.imencode(".png", np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    data = buf.tobytes()
    info = check_png(data)
    assert info.error is None and (info.height, info.width, info.channels) == (64, 64, 1)
    assert check_png(data[: len(data) // 2]).truncated
    assert check_png(data[:-12]).truncated and "IEND" in check_png(data[:-12]).error
    assert check_png(data + b"xx").trailing == 2
    assert check_png(b"\xff\xd8\xff not a png").error


def test_multi_index_finds_exactly_the_pairs_within_radius():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, (40, 256), dtype=np.uint8).astype(bool)
    near = base.copy()
    for row in near:  # each near copy differs in 0..24 bits
        flip = rng.choice(256, rng.integers(0, 25), replace=False)
        row[flip] = ~row[flip]
    bits = np.vstack([base, near])
    hashes = np.packbits(bits, axis=1).view(np.uint64)
    n = len(hashes)
    ii, jj = np.triu_indices(n, 1)
    brute = hamming(hashes[ii], hashes[jj])
    for radius in (0, 8, 16, 24):
        res = pairs_within(hashes, radius)
        got = set(zip(res.i.tolist(), res.j.tolist()))
        want = {(a, b) for a, b, d in zip(ii.tolist(), jj.tolist(), brute.tolist()) if d <= radius}
        assert got == want
        assert np.array_equal(res.distance, hamming(hashes[res.i], hashes[res.j]))
        assert res.candidates < len(ii)


def test_neighbour_searches_match_brute_force():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, size=(40, 4), dtype=np.uint64)
    desc = descriptors(rng.integers(0, 256, size=(40, 128, 128), dtype=np.uint8))
    for k in (1, 3):
        got = set(zip(*(x.tolist() for x in hash_neighbours(hashes, k, block=7))))
        d = np.array([[int(hamming(hashes[i], hashes[j])) if i != j else 999 for j in range(40)] for i in range(40)])
        for i in range(40):  # every row's k nearest (ties: any of equal distance) are in a pair
            partners = {b if a == i else a for a, b in got if i in (a, b)}
            assert sum(1 for j in partners if d[i, j] <= np.sort(d[i])[k - 1]) >= k
        got = set(zip(*(x.tolist() for x in nearest_pairs(desc, k, block=9))))
        sim = desc @ desc.T
        np.fill_diagonal(sim, -np.inf)
        for i in range(40):
            for j in np.argsort(-sim[i])[:k]:
                assert (min(i, j), max(i, j)) in got


def test_perceptual_hash_grey_and_colour_agree():
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.integers(0, 255, (300, 200), dtype=np.uint8), (15, 15), 0)
    colour = np.stack([grey] * 3, axis=-1)
    assert hamming(perceptual_hash(grey), perceptual_hash(colour)) == 0
    assert perceptual_hash(grey).shape == (4,)


# --- the command line ------------------------------------------------------------------------

def _cli(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "threecad", "validate", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_clean_problems_json_and_usage(root, tmp_path):
    proc = _cli(root, "--threads", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result: OK" in proc.stdout

    src = sorted((root / AI / "train" / "good").glob("*.png"))[0]
    shutil.copy(src, root / AI / "test" / "good" / "000095.png")
    proc = _cli(root, "--json", "--no-progress")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["summary"]["errors"] == 1 and report["summary"]["images"] > 0
    assert [p["kind"] for p in report["problems"]] == ["leakage"]
    assert report["problems"][0]["severity"] == Severity.ERROR.value
    assert "near_duplicates" in report["checks"] and report["closest_pairs"]

    proc = _cli(root)
    assert proc.returncode == 1 and "leakage" in proc.stdout and "FAILED" in proc.stdout

    assert _cli(tmp_path / "missing").returncode == 2


# --- issue 14: hostile files (one test per class, named after it) --------------------------

def _png_header_only(height: int, width: int, colour: int = 0) -> bytes:
    """A structurally complete PNG whose IHDR claims ``height`` x ``width`` (no real pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.timeout(300)
def test_class1_fifo_image_and_mask_do_not_hang_validate(root):
    import os

    img, mask = one_mask_image(root)
    fifo_img = root / AI / "test" / "good" / "000095.png"
    os.mkfifo(fifo_img)
    mask.unlink()
    os.mkfifo(mask)
    report = validate(root, workers=2)
    found_ = found(report)
    assert ("not_regular_file", "error", str(fifo_img)) in found_
    assert ("not_regular_file", "error", str(mask)) in found_
    assert ("missing_mask", "error", str(img)) in found_


def test_class1_reader_refuses_a_fifo_without_opening_it(tmp_path):
    import os

    from threecad.fileio import NotRegularFileError, read_regular
    from threecad.regions import MaskReadError, read_mask
    from threecad.validate.images import inspect_image, inspect_mask

    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError, match="FIFO"):
        read_regular(fifo)
    with pytest.raises(MaskReadError, match="FIFO"):
        read_mask(fifo)
    assert [p.kind for p in inspect_image(str(fifo)).problems] == ["not_regular_file"]
    assert [p.kind for p in inspect_mask(str(fifo)).problems] == ["not_regular_file"]


@pytest.mark.parametrize("what", ["image", "mask"])
def test_class2_png_header_claiming_60000x60000_is_refused_before_decoding(root, what):
    img, mask = one_mask_image(root)
    target = img if what == "image" else mask
    target.write_bytes(_png_header_only(60000, 60000))
    report = validate(root, workers=2)
    mine = [p for p in report.problems if p.path == target]
    assert [p.kind for p in mine] == ["image_too_large"], [p.to_dict() for p in report.problems]
    assert "60000x60000" in mine[0].message


@pytest.mark.parametrize("fmt", [".bmp", ".tiff", ".jpg"])
def test_class2_other_formats_are_sized_from_their_header(tmp_path, fmt):
    from threecad.fileio import header_size

    path = tmp_path / f"x{fmt}"
    Image.fromarray(np.zeros((30, 70), np.uint8)).save(path)
    assert header_size(path.read_bytes()) == (30, 70)


def test_class2_image_header_checks_hypothesis(tmp_path_factory):
    """Any bytes, and any PNG header size: the readers answer with problems, never raise."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from threecad.fileio import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
    from threecad.regions import MaskReadError, decode_mask
    from threecad.validate.images import inspect_image, inspect_mask

    folder = tmp_path_factory.mktemp("hyp")
    kinds = {"unreadable_image", "truncated_image", "corrupt_image", "image_too_large", "not_png",
             "trailing_data", "unreadable_mask", "truncated_mask", "mask_channels"}

    def check(data: bytes) -> None:
        path = folder / "f.png"
        path.write_bytes(data)
        for inspected in (inspect_image(str(path)), inspect_mask(str(path))):
            assert {p.kind for p in inspected.problems} <= kinds
        try:
            arr = decode_mask(data, path)
        except MaskReadError:
            return
        assert arr.ndim == 2 and arr.size <= MAX_IMAGE_PIXELS

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=300))
    def any_bytes(data: bytes) -> None:
        check(data)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1), st.sampled_from([0, 2, 4, 6]),
           st.integers(0, 40))
    def png_sizes(height: int, width: int, colour: int, cut: int) -> None:
        data = _png_header_only(height, width, colour)
        check(data[:len(data) - cut])
        if cut == 0:
            path = folder / "g.png"
            path.write_bytes(data)
            kinds_found = {p.kind for p in inspect_image(str(path)).problems}
            too_big = (height == 0 or width == 0 or max(height, width) > MAX_IMAGE_SIDE
                       or height * width > MAX_IMAGE_PIXELS)
            assert ("image_too_large" in kinds_found) == too_big, (height, width, kinds_found)

    any_bytes()
    png_sizes()
