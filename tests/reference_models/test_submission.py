"""Submissions are written atomically; other folders are never overwritten."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from threecad.reference_models.submission import SubmissionWriter
from threecad.errors import UsageError

ROW = SimpleNamespace(category="Copper_Stator", folder="good", stem="000001")


def test_writes_maps_scores_and_metadata(tmp_path):
    out = tmp_path / "preds"
    with SubmissionWriter(out, {"method": "m"}) as w:
        w.add(ROW, np.arange(12, dtype=np.float32).reshape(3, 4))
    amap = np.load(out / "Copper_Stator" / "test" / "good" / "000001.npy", allow_pickle=False)
    assert amap.dtype == np.float16 and amap.shape == (3, 4)
    assert (out / "scores.csv").read_text() == "image,score\nCopper_Stator/test/good/000001,11.0\n"
    assert json.loads((out / "submission.json").read_text()) == {"format_version": 1, "method": "m"}
    with SubmissionWriter(out, {"method": "again"}) as w:  # an existing submission is replaced
        w.add(ROW, np.zeros((2, 2)))
    assert json.loads((out / "submission.json").read_text())["method"] == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"]


def test_interrupted_run_leaves_nothing_and_other_folders_are_refused(tmp_path):
    out = tmp_path / "preds"
    with pytest.raises(RuntimeError):
        with SubmissionWriter(out, {"method": "m"}) as w:
            w.add(ROW, np.zeros((2, 2)))
            raise RuntimeError("interrupted")
    assert not list(tmp_path.iterdir())
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a submission"):
        SubmissionWriter(other, {"method": "m"})
    with pytest.raises(ValueError, match="finite"):
        with SubmissionWriter(out, {"method": "m"}) as w:
            w.add(ROW, np.array([[np.nan]]))


def test_published_submission_is_readable_by_the_team(tmp_path):
    """Class 10 of the hardening issue: the folder and its files get the umask, not 0700/0600."""
    import os
    import stat

    old = os.umask(0o027)
    try:
        with SubmissionWriter(tmp_path / "preds", {"method": "m"}) as w:
            w.add(ROW, np.zeros((2, 2)))
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [tmp_path / "preds", *(tmp_path / "preds").rglob("*")]}
    assert all(m == (0o750 if (tmp_path / k).is_dir() else 0o640) for k, m in modes.items()), modes
