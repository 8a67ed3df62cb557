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


def _features_directly(rgb, config):
    """The features computed the plain way (medians and percentiles of all pixels): the reference
    for the histogram medians."""
    import cv2

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = lab[:, :, 0] / 255.0
    med = float(np.median(grey))
    spread = float(np.percentile(grey, 90) - np.percentile(grey, 10))
    grey = (grey - med) / (spread + 0.05)
    chroma = lab[:, :, 1:] - np.median(lab[:, :, 1:].reshape(-1, 2), axis=0)
    chroma = cv2.GaussianBlur(chroma / 32.0, (0, 0), 1.5)
    chans = [cv2.GaussianBlur(grey, (0, 0), 1.0), chroma[:, :, 0], chroma[:, :, 1]]
    for s in config.sigmas:
        b = cv2.GaussianBlur(grey, (0, 0), s)
        gx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3)
        chans.append(np.sqrt(gx * gx + gy * gy) * s)
        chans.append(b - cv2.GaussianBlur(b, (0, 0), 2.0 * s))
    mean = cv2.GaussianBlur(grey, (0, 0), 3.0)
    chans.append(np.sqrt(np.maximum(cv2.GaussianBlur(grey * grey, (0, 0), 3.0) - mean * mean, 0.0)))
    grid = config.image_size // config.stride
    return cv2.resize(np.stack(chans, axis=-1), (grid, grid), interpolation=cv2.INTER_AREA)


def test_features_equal_the_direct_computation_bit_for_bit(sample_root):
    from threecad.reference_models.images import read_rgb

    rng = np.random.default_rng(3)
    paths = load_manifest(sample_root)["image_path"].tolist()[::7]
    # 63: an odd pixel count; stride 2: OpenCV's own 2x2 pooling path
    for size, stride, sigmas in ((256, 4, (1.0, 2.0, 4.0)), (63, 3, (1.5, 3.0)), (64, 2, (1.0,))):
        cfg = PatchKNNConfig(image_size=size, stride=stride, sigmas=sigmas)
        images = [read_rgb(p, size) for p in paths]
        images += [rng.integers(0, 256, (size, size, 3), dtype=np.uint8),  # every level, all distinct-ish
                   np.full((size, size, 3), 77, np.uint8),                     # constant: spread 0
                   np.repeat(rng.integers(0, 3, (size, size, 1), dtype=np.uint8) * 120, 3, axis=2)]  # grey, 3 levels
        for img in images:
            got = patch_features(img, cfg)
            assert got.dtype == np.float32 and got.shape == (size // stride, size // stride, n_features(cfg))
            np.testing.assert_array_equal(got, _features_directly(img, cfg))
    with pytest.raises(ValueError, match="uint8"):
        patch_features(np.zeros((256, 256, 3), np.float32), PatchKNNConfig())


def test_submission_does_not_depend_on_threads_and_equals_the_model(sample_root, tmp_path):
    from threecad.reference_models.images import read_rgb
    from threecad.reference_models.submission import map_key

    manifest = load_manifest(sample_root, categories=["CS", "AI"])
    cfg = PatchKNNConfig(image_size=64)
    one = fit_predict_submission(manifest, tmp_path / "one", config=cfg, workers=1)
    three = fit_predict_submission(manifest, tmp_path / "three", config=cfg, workers=3)
    maps = sorted(p.relative_to(one) for p in one.rglob("*.npy"))
    assert maps == sorted(p.relative_to(three) for p in three.rglob("*.npy"))
    assert len(maps) == int((manifest["split"] == "test").sum())
    for rel in maps:
        np.testing.assert_array_equal(np.load(one / rel), np.load(three / rel))
    assert (one / "scores.csv").read_text() == (three / "scores.csv").read_text()
    rows = manifest[manifest["category"] == manifest["category"].iloc[0]]
    model = PatchKNN(cfg).fit(rows[rows["split"] == "train"]["image_path"].tolist(), workers=2)
    for row in rows[rows["split"] == "test"].itertuples():
        want = model.anomaly_map(read_rgb(row.image_path, 64)).astype(np.float16)
        np.testing.assert_array_equal(np.load(one / (map_key(row) + ".npy")), want)


def test_a_bad_image_stops_the_run_and_leaves_no_submission(sample_root, tmp_path):
    manifest = load_manifest(sample_root, categories=["CS", "AI"]).copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    for split in ("train", "test"):
        m = manifest.copy()
        m.loc[m.index[(m["split"] == split).to_numpy()][-1], "image_path"] = str(bad)
        out = tmp_path / f"preds-{split}"
        with pytest.raises(DataError, match="broken.png: cannot read or decode"):
            fit_predict_submission(m, out, config=PatchKNNConfig(image_size=64), workers=2)
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
