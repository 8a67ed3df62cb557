"""read_rgb: decoding and squashing images for the reference models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from threecad.errors import DataError
from threecad.reference_models.images import read_rgb


def _read_as_colour(path, size):
    """The plain way: decode to three channels (IMREAD_COLOR) and resize those."""
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    if size is not None and (h, w) != (size, size):
        shrink = h > size and w > size
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[:, :, ::-1])


@pytest.mark.parametrize("shape", [(731, 940), (512, 512), (1024, 768), (300, 200), (97, 411), (256, 256), (40, 64)])
@pytest.mark.parametrize("size", [256, 64, None])
def test_grey_png_reads_as_three_equal_channels_like_imread_color(tmp_path, shape, size):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    grey = cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (0, 0), 1.5)
    grey[::17] = rng.integers(0, 256, size=grey[::17].shape, dtype=np.uint8)  # sharp rows too
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    assert path.read_bytes()[25] == 0  # an 8-bit greyscale PNG: the grey path is taken
    got = read_rgb(path, size)
    want = _read_as_colour(path, size)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])


def test_other_pngs_read_as_before(tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "rgb.png": rng.integers(0, 256, (300, 410, 3), dtype=np.uint8),
        "rgba.png": rng.integers(0, 256, (300, 410, 4), dtype=np.uint8),
        "grey16.png": rng.integers(0, 65536, (300, 410), dtype=np.uint16),
    }
    for name, array in cases.items():
        path = tmp_path / name
        cv2.imwrite(str(path), array)
        np.testing.assert_array_equal(read_rgb(path, 256), _read_as_colour(path, 256))
    assert read_rgb(tmp_path / "rgb.png", None).shape == (300, 410, 3)


def test_unreadable_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x00broken")
    for path in (bad, tmp_path / "missing.png", tmp_path):
        with pytest.raises(DataError, match="cannot read or decode"):
            read_rgb(path, 256)
