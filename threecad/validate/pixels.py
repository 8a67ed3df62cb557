"""Telling a copy of an image from a distinct shot of the same part, pixel by pixel.

In the real release the images of one part are nearly identical (distinct shots can share a
64-bit perceptual hash), so a hash alone cannot say "copy". Candidate pairs are therefore
confirmed on small grey thumbnails (:data:`THUMB_SIZE` pixels square, area-averaged, kept
for every image during the one read of its file):

1. the second thumbnail is aligned onto the first with an affine warp (OpenCV's ECC, which
   is insensitive to brightness and contrast), undoing a resize, a slight crop or a shift;
2. the difference of the aligned thumbnails is smoothed (Gaussian, :data:`SMOOTH_SIGMA`
   px), which removes what resampling and compression leave at the pixel scale and keeps
   what distinct shots differ by: lighting (broad) and defects (local blobs);
3. the pair is a copy when, over the part of the first thumbnail that the aligned second
   one covers (away from its edges by the smoothing's reach), the mean absolute smoothed
   difference is at most :data:`COPY_MAX_RESIDUAL` grey levels and its largest value at
   most :data:`COPY_MAX_PEAK`.

Candidates come from two sources, so that crops (which move a DCT hash far) are not
missed: pairs whose perceptual hashes lie within a radius, and each image's
:data:`NEIGHBOURS` nearest images by a crop-tolerant descriptor (its 16 x 16 thumbnail,
zero-mean and unit-norm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "THUMB_SIZE",
    "SMOOTH_SIGMA",
    "COPY_MAX_RESIDUAL",
    "COPY_MAX_PEAK",
    "NEIGHBOURS",
    "PixelMatch",
    "thumbnail",
    "descriptors",
    "nearest_pairs",
    "compare_thumbnails",
]

THUMB_SIZE = 128
SMOOTH_SIGMA = 2.0
# Grey levels (0-255) of the smoothed difference after alignment. Measured on the sample
# (scripts/bench_validate.py): copies (PNG or JPEG re-encoded down to quality 50, resized to
# 50-90 %, cropped by 2-5 %) stay below about 0.6 mean / 3 peak; distinct shots of one part
# (sub-pixel shift, lighting change of a few percent, fresh noise, other defects) lie above
# about 1.5 mean or 6 peak.
COPY_MAX_RESIDUAL = 0.6
COPY_MAX_PEAK = 6.0
NEIGHBOURS = 3
_DESCRIPTOR_SIZE = 16
_LEVELS = ((32, 60), (64, 30), (THUMB_SIZE, 6))  # (size, ECC iterations)
_MAX_SCALE_CHANGE = 0.25  # a level's warp scaling by more than this is a divergence, not a copy
_MAX_SHIFT = 0.2  # nor one shifting by more than this share of the side
_MIN_COVERED = 0.6  # the aligned thumbnail must cover this share of the first one


@dataclass(frozen=True)
class PixelMatch:
    """How two thumbnails compare after alignment.

    Attributes
    ----------
    residual : float
        Mean absolute smoothed difference, grey levels (``inf`` when alignment failed).
    peak : float
        Largest absolute smoothed difference inside the border, grey levels.
    copy : bool
        Both within the copy limits.
    """

    residual: float
    peak: float
    copy: bool


def to_grey(image: np.ndarray) -> np.ndarray:
    """One channel of an OpenCV-decoded image (BGR/BGRA converted, other channel counts averaged).

    Grey first: cheaper than resizing every channel. Shape ``(H, W)``, the input's depth
    (float32 for averaged channels).
    """
    import cv2

    if image.ndim != 3:
        return image
    c = image.shape[2]
    if c == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if c == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return image.mean(axis=2, dtype=np.float32)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The grey thumbnail of an image: ``THUMB_SIZE`` square, area-averaged, uint8.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        As decoded by OpenCV (BGR or BGRA), 8 or 16 bit.

    Returns
    -------
    ndarray of shape (THUMB_SIZE, THUMB_SIZE), uint8
    """
    import cv2

    small = cv2.resize(to_grey(image), (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    if small.dtype == np.uint16:
        small = small.astype(np.float32) / 257.0
    return np.clip(np.asarray(small, np.float32) + 0.5, 0, 255).astype(np.uint8)


def descriptors(thumbs: np.ndarray) -> np.ndarray:
    """Crop-tolerant descriptors: 16 x 16 area averages, zero-mean, unit-norm.

    Parameters
    ----------
    thumbs : ndarray of shape (n, THUMB_SIZE, THUMB_SIZE), uint8

    Returns
    -------
    ndarray of shape (n, 256), float32
    """
    n = len(thumbs)
    k = THUMB_SIZE // _DESCRIPTOR_SIZE
    d = thumbs.reshape(n, _DESCRIPTOR_SIZE, k, _DESCRIPTOR_SIZE, k).mean(axis=(2, 4), dtype=np.float32)
    d = d.reshape(n, -1)
    d -= d.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    return d / np.maximum(norm, 1e-6)


def nearest_pairs(desc: np.ndarray, k: int = NEIGHBOURS, *, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine similarity, as pairs ``i < j`` (each once).

    Brute force in blocks of ``block`` rows (a matrix product), so memory stays
    ``block * n`` floats.
    """
    n = len(desc)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    firsts, seconds = [], []
    for start in range(0, n, block):
        sim = desc[start:start + block] @ desc.T
        rows = np.arange(start, min(start + block, n))
        sim[rows - start, rows] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        firsts.append(np.repeat(rows, k))
        seconds.append(top.ravel())
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo * n + hi)
    return key // n, key % n


def _align(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Affine warp taking ``fa``'s coordinates to ``fb``'s, coarse to fine (32, 64, 128 px).

    Starting small widens the range ECC converges from (a crop of several percent moves the
    content by several thumbnail pixels); a level that does not converge, or that diverges
    to a warp no resize or slight crop gives, keeps the warp found so far.
    """
    import cv2

    warp = np.eye(2, 3, dtype=np.float32)
    for size, iterations in _LEVELS:
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
        scale = size / THUMB_SIZE
        if size == THUMB_SIZE:
            la, lb = fa, fb
        else:
            la = cv2.resize(fa, (size, size), interpolation=cv2.INTER_AREA)
            lb = cv2.resize(fb, (size, size), interpolation=cv2.INTER_AREA)
        level = warp.copy()
        level[:, 2] *= scale
        try:
            _, level = cv2.findTransformECC(la, lb, level, cv2.MOTION_AFFINE, criteria, None, 3)
        except cv2.error:  # flat images, or no convergence at this level
            continue
        level[:, 2] /= scale
        if _plausible(level):
            warp = level
    return warp


def _plausible(warp: np.ndarray) -> bool:
    """A warp a resize, a slight crop or a shift could give (ECC may diverge without saying so)."""
    linear = warp[:, :2]
    if not np.all(np.isfinite(warp)):
        return False
    scales = np.abs(np.linalg.svd(linear, compute_uv=False))
    return bool(np.all(np.abs(scales - 1) <= _MAX_SCALE_CHANGE)
                and np.all(np.abs(warp[:, 2]) <= _MAX_SHIFT * THUMB_SIZE + _MAX_SCALE_CHANGE * THUMB_SIZE))


def compare_thumbnails(a: np.ndarray, b: np.ndarray) -> PixelMatch:
    """Align thumbnail ``b`` onto ``a`` and measure what still differs (see the module notes).

    Parameters
    ----------
    a, b : ndarray of shape (THUMB_SIZE, THUMB_SIZE), uint8

    Returns
    -------
    PixelMatch
    """
    import cv2

    fa, fb = a.astype(np.float32), b.astype(np.float32)
    warp = _align(fa, fb)
    size = (THUMB_SIZE, THUMB_SIZE)
    aligned = cv2.warpAffine(fb, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    diff = cv2.GaussianBlur(fa - aligned, (0, 0), SMOOTH_SIGMA)
    # Compare only where b covers a (a crop leaves a's margins uncovered), away from the
    # uncovered part by the blur's reach.
    covered = cv2.warpAffine(np.ones_like(fb), warp, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    reach = 2 * int(np.ceil(3 * SMOOTH_SIGMA)) + 1
    covered = cv2.erode(covered, np.ones((reach, reach), np.uint8), borderType=cv2.BORDER_CONSTANT,
                        borderValue=0) > 0
    if covered.mean() < _MIN_COVERED:
        return PixelMatch(float("inf"), float("inf"), False)
    inner = np.abs(diff[covered])
    residual, peak = float(inner.mean()), float(inner.max())
    return PixelMatch(residual, peak, residual <= COPY_MAX_RESIDUAL and peak <= COPY_MAX_PEAK)
