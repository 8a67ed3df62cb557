"""Leaderboards: ranking, masks read once, invalid submissions, published rows, files, determinism."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from threecad.eval.leaderboard import score_leaderboard, write_leaderboard
from threecad.eval.synthetic import write_synthetic_submission
from threecad.manifest import scan

CATS = ["ACC", "AI"]


@pytest.fixture(scope="module")
def subs(sample_root, tmp_path_factory):
    """Three submissions of known quality on ACC and AI: good > noisy > random."""
    base = tmp_path_factory.mktemp("subs")
    manifest = scan(sample_root).manifest
    good = base / "good"
    write_synthetic_submission(manifest, good, seed=0)
    noisy, rand = base / "noisy", base / "random"
    rng = np.random.default_rng(5)
    for dest, amount in ((noisy, 0.6), (rand, None)):
        for p in good.rglob("*.npy"):
            q = dest / p.relative_to(good)
            q.parent.mkdir(parents=True, exist_ok=True)
            a = np.load(p).astype(np.float32)
            a = rng.random(a.shape) if amount is None else a + amount * rng.standard_normal(a.shape)
            np.save(q, a.astype(np.float32))
        (dest / "submission.json").write_text(json.dumps({"method": dest.name}))
    (good / "submission.json").write_text(json.dumps({"method": "good"}))
    return {"good": good, "noisy": noisy, "random": rand}


def board(paths, root, **kw):
    kw.setdefault("categories", CATS)
    kw.setdefault("workers", 2)
    return score_leaderboard([str(p) for p in paths], root, command=["threecad", "leaderboard"], **kw)


def test_known_quality_ranks_in_order_and_files_are_written(subs, sample_root, tmp_path):
    b = board([subs["random"], subs["good"], subs["noisy"]], sample_root, include_published=True)
    assert [e.name for e in b.entries] == ["good", "noisy", "random"]
    means = [e.results.metric("pixel_auroc") for e in b.entries]
    assert means[0] > means[1] > means[2]
    assert not b.any_invalid
    paths = write_leaderboard(b, tmp_path / "lb")
    names = {p.relative_to(tmp_path / "lb").as_posix() for p in paths}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "good/results.json",
            "noisy/results.json", "random/results.json"} <= names
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    good_row = next(ln for ln in md.splitlines() if ln.startswith("| good |"))
    assert good_row.count("**") >= 2 * 2  # best values in bold
    assert "CFRG (published, not re-scored)" in md and "93.4/17.6" in md  # published mean row
    lj = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert [e["rank"] for e in lj["entries"]] == [1, 2, 3]
    assert lj["published"]["note"] == "not re-scored"
    rj = json.loads((tmp_path / "lb" / "good" / "results.json").read_text())
    for key in ("threecad_version", "protocol", "submission", "ground_truth", "command", "created"):
        assert key in rj
    assert len(rj["submission"]["digest"]) == 64 and rj["submission"]["files"]
    assert rj["protocol"]["fpr_limit"] == 0.3


def test_masks_are_read_once_for_all_submissions(subs, sample_root, monkeypatch):
    import threecad.eval.evaluate as ev

    calls = []
    real = ev.image_truth

    def counting(row, protocol):
        calls.append(row["image_id"])
        return real(row, protocol)

    monkeypatch.setattr(ev, "image_truth", counting)
    board([subs["good"], subs["noisy"], subs["random"]], sample_root)
    assert calls and len(calls) == len(set(calls))


def test_bootstrap_and_paired_comparison_in_the_leaderboard(subs, sample_root, tmp_path):
    same = tmp_path / "same"
    shutil.copytree(subs["good"], same)
    (same / "submission.json").write_text(json.dumps({"method": "same"}))
    b = board([subs["good"], same, subs["random"]], sample_root, n_resamples=60, seed=1,
              compare=[("good", "same"), ("good", "random")], max_levels=200_000)  # every level: exact
    good = b.entries[0] if b.entries[0].name == "good" else b.entries[1]
    boot = good.results.bootstrap
    for folder, block in boot["categories"].items():
        for m in ("pixel_auroc", "aupro", "image_auroc"):
            point = good.results.categories[folder][m]
            assert block[m]["low"] - 1e-3 <= point <= block[m]["high"] + 1e-3
        for t, tb in block["by_type"].items():  # per defect type too (exact here: float16 maps)
            exact = good.results.categories[folder].by_type[t]
            for m in ("pixel_auroc", "pixel_ap", "aupro"):
                if exact[m] is not None and np.isfinite(exact[m]):
                    assert tb[m]["point_error"] <= (1e-12 if block["pixel_metrics"] == "exact" else 1e-3)
                    assert tb[m]["low"] - 1e-3 <= exact[m] <= tb[m]["high"] + 1e-3
    assert any(block["by_type"] for block in boot["categories"].values())
    assert all(block["pixel_metrics"] == "exact" for block in boot["categories"].values())
    self_cmp, vs_random = b.comparisons
    for block in [*self_cmp["categories"].values(), self_cmp["mean"]]:
        for d in block.values():
            assert d["difference"] == 0.0 and d["low"] == 0.0 and d["high"] == 0.0 and not d["excludes_zero"]
    assert vs_random["mean"]["pixel_auroc"]["excludes_zero"]
    assert vs_random["mean"]["pixel_auroc"]["difference"] > 0.3


def test_compare_needs_bootstrap_and_known_names(subs, sample_root):
    from threecad.errors import UsageError

    with pytest.raises(UsageError, match="need bootstrap resamples"):
        board([subs["good"]], sample_root, compare=[("good", "good")])
    with pytest.raises(UsageError, match="no submission called 'nope'"):
        board([subs["good"]], sample_root, n_resamples=5, compare=[("good", "nope")])


def _zip_folder(folder: Path, dest: Path, extra=()) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
        for name, data in extra:
            z.writestr(name, data)
    return dest


def test_zipped_submission_scores_like_the_folder(subs, sample_root, tmp_path):
    z = _zip_folder(subs["good"], tmp_path / "good_zip.zip")
    b = board([subs["good"], z], sample_root)
    a, c = b.entries
    assert a.status == c.status == "scored"
    assert a.name == "good" and c.name == "good_zip"
    # compared as written (NaN, e.g. an AUPRO of an absent size class, is null there and equal)
    assert json.loads(a.results.to_json())["categories"] == json.loads(c.results.to_json())["categories"]
    assert a.results.submission_digest == c.results.submission_digest


def bad_submissions(subs, tmp_path: Path) -> dict[str, Path]:
    """One submission per kind of bad input."""
    out = {}
    out["traversal"] = _zip_folder(subs["good"], tmp_path / "traversal.zip", [("../../evil.npy", b"x")])
    out["nested"] = _zip_folder(subs["good"], tmp_path / "nested.zip", [("inner.zip", b"PK\x03\x04junk")])
    link = tmp_path / "link"
    shutil.copytree(subs["good"], link)
    victim = next(link.rglob("*.npy"))
    outside = tmp_path / "outside.npy"
    shutil.copy(victim, outside)
    victim.unlink()
    os.symlink(outside, victim)
    out["link"] = link
    huge = tmp_path / "huge"
    shutil.copytree(subs["good"], huge)
    target = next((huge / "Aluminum_Camera_Cover").rglob("*.npy"))
    with open(target, "wb") as f:  # a header announcing 40000 x 40000 float32, no data
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (40000, 40000)})
    out["huge"] = huge
    wrong = tmp_path / "wrong"
    for p in subs["good"].rglob("*.npy"):
        q = wrong / p.relative_to(subs["good"]).parent / f"9{p.stem}.npy"
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)
    out["wrong"] = wrong
    return out


def test_bad_submissions_are_invalid_rows_and_others_are_scored(subs, sample_root, tmp_path):
    bad = bad_submissions(subs, tmp_path)
    b = board([subs["good"], *bad.values()], sample_root)
    by_source = {Path(e.source).name: e for e in b.entries}
    assert by_source["good"].status == "scored"
    assert b.any_invalid
    expect = {"traversal.zip": "unsafe_member", "nested.zip": "nested_archive", "link": "link_outside",
              "huge": "bad_map", "wrong": "extra_map"}
    for name, kind in expect.items():
        e = by_source[name]
        assert e.status == "invalid", name
        assert any(p.kind == kind for p in e.problems), (name, [p.kind for p in e.problems])
        assert e.reason
    assert "more than the limit" in next(p.message for p in by_source["huge"].problems if p.kind == "bad_map")
    assert "missing_map" in {p.kind for p in by_source["wrong"].problems}
    assert not (tmp_path.parent / "evil.npy").exists()
    md = write_leaderboard(b, tmp_path / "lb")[-3].read_text()
    assert "## Invalid submissions" in md and "(invalid)" in md


def test_files_are_byte_identical_across_runs_apart_from_the_time(subs, sample_root, tmp_path):
    def files(out):
        b = board([subs["good"], subs["noisy"]], sample_root, n_resamples=30, compare=[("good", "noisy")],
                  workers=1 if out.name == "a" else 2)
        write_leaderboard(b, out)
        texts = {}
        for p in sorted(out.rglob("*")):
            if p.is_file():
                if p.suffix == ".parquet":
                    texts[p.relative_to(out).as_posix()] = p.read_bytes()
                    continue
                text = p.read_text()
                if p.name == "results.json":
                    obj = json.loads(text)
                    assert obj.pop("created")
                    text = json.dumps(obj)
                texts[p.relative_to(out).as_posix()] = text
        return texts

    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_cli_exit_code_and_output(subs, sample_root, tmp_path):
    from threecad.cli import main

    rc = main(["leaderboard", str(subs["good"]), str(subs["random"]), "--data-root", str(sample_root),
               "--categories", "ACC", "--out", str(tmp_path / "ok"), "--no-progress"])
    assert rc == 0 and (tmp_path / "ok" / "leaderboard.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["leaderboard", str(subs["good"]), str(empty), "--data-root", str(sample_root),
               "--categories", "ACC", "--out", str(tmp_path / "bad"), "--no-progress"])
    assert rc == 1
    lj = json.loads((tmp_path / "bad" / "leaderboard.json").read_text())
    assert [e["status"] for e in lj["entries"]] == ["scored", "invalid"]
    assert "category folder" in lj["entries"][1]["reason"]


def test_eval_scores_a_zip_and_writes_results_beside_it(subs, sample_root, tmp_path):
    from threecad.cli import main

    z = _zip_folder(subs["good"], tmp_path / "good.zip")
    rc = main(["eval", str(z), "--data-root", str(sample_root), "--categories", "ACC", "--no-progress"])
    assert rc == 0
    obj = json.loads((tmp_path / "good-results" / "results.json").read_text())
    assert obj["method"] == "good" and set(obj["categories"]) == {"Aluminum_Camera_Cover"}
    assert not list(tmp_path.glob("threecad-submission-*"))


def test_readme_quick_start_names_entries_after_their_paths(subs, sample_root, tmp_path, capsys):
    """``threecad leaderboard a/ b.zip --compare a b``: a zip is named without ``.zip``; folders and the
    board's entry folders use that name; the method of submission.json is shown beside it; the terminal
    gets aligned text, never Markdown."""
    from threecad.cli import main

    a = tmp_path / "a"
    shutil.copytree(subs["good"], a)                      # submission.json says "good"
    b = _zip_folder(subs["noisy"], tmp_path / "b.zip")    # submission.json says "noisy"
    rc = main(["leaderboard", str(a), str(b), "--data-root", str(sample_root), "--categories", "ACC",
               "--bootstrap", "20", "--compare", "a", "b", "--out", str(tmp_path / "board"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "**" not in out and "| " not in out
    assert "a (good)" in out and "b (noisy)" in out and "Paired comparison: a - b" in out
    board = tmp_path / "board"
    assert (board / "a" / "results.json").is_file() and (board / "b" / "results.json").is_file()
    assert (board / "a" / "images.parquet").is_file()
    lj = json.loads((board / "leaderboard.json").read_text())
    assert [(e["name"], e["method"]) for e in lj["entries"]] == [("a", "good"), ("b", "noisy")]
    assert lj["comparisons"][0]["a"] == "a"
    md = (board / "leaderboard.md").read_text()
    assert "| a (good) |" in md and "**" in md
    # a second run replaces the whole board (one rename), nothing else may be in the folder
    (board / "notes.txt").write_text("mine")
    rc = main(["leaderboard", str(a), "--data-root", str(sample_root), "--categories", "ACC",
               "--out", str(board), "--no-progress"])
    assert rc == 2 and "notes.txt" in capsys.readouterr().err
    assert (board / "b" / "results.json").is_file()


def test_an_entry_is_found_by_name_method_or_path(subs, sample_root, tmp_path):
    from threecad.eval.leaderboard import Entry, _find_entry
    from threecad.errors import UsageError

    entries = [Entry(source=str(tmp_path / "x"), name="x", method="good"),
               Entry(source=str(tmp_path / "y.zip"), name="y", method="good")]
    assert _find_entry(entries, "x") is entries[0]
    assert _find_entry(entries, str(tmp_path / "y.zip")) is entries[1]
    with pytest.raises(UsageError, match="names 2 submissions"):
        _find_entry(entries, "good")
