"""The training-free PatchKNN baseline: features, fitting, and a clear win over random maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from threecad.reference_models.patchknn import PatchKNN, PatchKNNConfig
from threecad.reference_models.patchknn.features import n_features, patch_features
from threecad.reference_models.patchknn.predict import fit_predict_submission
from threecad.reference_models.submission import SubmissionWriter
from threecad.errors import DataError
from threecad.manifest import load_manifest

PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "aupro")


def test_features_shape_and_exposure_invariance():
    cfg = PatchKNNConfig(image_size=64, stride=4)
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 100 + 60).astype(np.uint8)
    f = patch_features(img, cfg)
    assert f.shape == (16, 16, n_features(cfg)) and f.dtype == np.float32
    brighter = np.clip(img.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
    assert np.abs(patch_features(brighter, cfg) - f).mean() < 0.1 * np.abs(f).mean()
    with pytest.raises(ValueError):
        patch_features(img[:32], cfg)


def test_fit_scores_a_painted_defect_highest(sample_root):
    m = load_manifest(sample_root, categories=["AI"])
    train = m[m["split"] == "train"]["image_path"].tolist()
    model = PatchKNN(PatchKNNConfig(image_size=128)).fit(train, workers=1)
    from threecad.reference_models.images import read_rgb

    img = read_rgb(train[0], 128)
    base = model.anomaly_map(img)
    painted = img.copy()
    painted[40:60, 40:60] = (255, 0, 0)
    amap = model.anomaly_map(painted)
    assert amap.shape == (128, 128)
    assert amap[50, 50] > 3 * base[50, 50]
    assert np.unravel_index(np.argmax(amap), amap.shape)[0] in range(30, 70)
    with pytest.raises(DataError, match="train/good"):
        PatchKNN().fit([])


def _random_submission(manifest, out):
    rng = np.random.default_rng(0)
    with SubmissionWriter(out, {"method": "random"}) as w:
        for row in manifest[manifest["split"] == "test"].itertuples():
            w.add(row, rng.random((64, 64)).astype(np.float32))
    return out


def test_beats_random_maps_by_a_clear_margin(sample_root, tmp_path):
    from threecad.commands.eval import score_submission

    manifest = load_manifest(sample_root)
    knn = fit_predict_submission(manifest, tmp_path / "knn")
    meta = json.loads((knn / "submission.json").read_text())
    assert meta["model"] == "patchknn" and meta["config"]["image_size"] == 256
    rand = _random_submission(manifest, tmp_path / "rand")
    for protocol in ("standard", "paper"):
        k = score_submission(knn, sample_root, protocol_name=protocol)["mean"]
        r = score_submission(rand, sample_root, protocol_name=protocol)["mean"]
        assert k["pixel_auroc"] > r["pixel_auroc"] + 0.2, (protocol, k, r)
        assert k["pixel_ap"] > 4 * r["pixel_ap"] and k["pixel_ap"] > r["pixel_ap"] + 0.05, (protocol, k, r)
        assert k["aupro"] > r["aupro"] + 0.2, (protocol, k, r)


def test_baseline_cli_needs_no_torch_nor_scikit_learn(sample_root, tmp_path):
    from tests.threecad.test_cli import loaded_modules

    out = tmp_path / "preds"
    mods = loaded_modules(["predict", "--model", "baseline", "--data-root", str(sample_root), "--categories", "CS",
                           "--out", str(out)])
    assert (out / "submission.json").is_file() and len(list(out.rglob("*.npy"))) == 5
    assert "numba" in mods and "cv2" in mods
    assert not mods & {"torch", "torchvision", "fiftyone", "sklearn"}, mods


def test_anomaly_map_uses_exact_nearest_distances(sample_root):
    import cv2

    from threecad.reference_models.images import read_rgb

    m = load_manifest(sample_root, categories=["CS"])
    train = m[m["split"] == "train"]["image_path"].tolist()
    test = m[m["split"] == "test"]["image_path"].tolist()[:2]
    for k in (1, 3):
        cfg = PatchKNNConfig(image_size=64, k=k)
        model = PatchKNN(cfg).fit(train, workers=1)
        for path in test:
            rgb = read_rgb(path, 64)
            f = patch_features(rgb, cfg)
            q = ((f.reshape(-1, f.shape[-1]) - model.mean) / model.scale).astype(np.float64)
            d = np.sqrt(((q[:, None, :] - model.bank[None].astype(np.float64)) ** 2).sum(-1))
            patch = np.sort(d, axis=1)[:, :k].mean(axis=1).reshape(16, 16).astype(np.float32)
            want = cv2.GaussianBlur(cv2.resize(patch, (64, 64), interpolation=cv2.INTER_LINEAR), (0, 0), 4.0)
            np.testing.assert_allclose(model.anomaly_map(rgb), want, rtol=1e-5, atol=1e-6)
