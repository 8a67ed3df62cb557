"""Pure functions of the 3CAD authors' evaluation protocol (``--protocol paper``).

The authors' test script (3CAD repository, ``test.py`` and
``train_utils/toolbox/metrics.py``; the same ``compute_pro`` as Reverse Distillation,
Deng & Li 2022) evaluates one test image at a time on a 256x256 grid:

1. The mask is read with PIL, resized with torchvision ``Resize([256, 256], NEAREST)``
   (on a PIL image this is ``Image.resize((256, 256), Image.NEAREST)``), converted with
   ``ToTensor`` (``uint8 / 255``) and binarised ``> 0.5``: :func:`resize_mask_paper`.
2. The image label for I-AUROC is the max of that resized mask, so an image whose defect
   vanished in the resize counts as good: :func:`paper_image_label`.
3. For each defective image (by folder label) a PRO area is computed from that image
   alone, with 200 thresholds between the map's min and max: :func:`per_image_pro_paper`.
   The category's P-PRO is the unweighted mean over defective images:
   :func:`mean_pro_paper`.

Where the authors' code crashes (a defect that vanished in the resize, a constant map,
fewer than two curve points below the FPR limit) or silently yields NaN (every kept FPR
is 0), these functions return NaN with a logged warning, and :func:`mean_pro_paper`
skips NaN images and reports how many it skipped.

Warnings go to the ``logging`` logger of this module; nothing is printed.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, NamedTuple

import numpy as np

__all__ = [
    "PAPER_SIZE",
    "PAPER_THRESHOLDS",
    "PAPER_FPR_LIMIT",
    "resize_mask_paper",
    "resize_map_paper",
    "paper_image_label",
    "paper_thresholds",
    "per_image_pro_paper",
    "PaperProMean",
    "mean_pro_paper",
]

log = logging.getLogger(__name__)

PAPER_SIZE = 256
"""Side of the square evaluation grid (images are squashed to it, no crop)."""

PAPER_THRESHOLDS = 200
"""``num_th`` of the authors' ``compute_pro``: the step is ``(max - min) / 200``."""

PAPER_FPR_LIMIT = 0.3
"""Curve points are kept while their FPR is strictly below this."""


# --------------------------------------------------------------------------- masks


def resize_mask_paper(mask: np.ndarray, *, size: int = PAPER_SIZE,
                      image_id: str | None = None) -> np.ndarray:
    """Resize and binarise a ground-truth mask as the authors' data loader does.

    ``Image.fromarray(mask).resize((size, size), Image.NEAREST)`` (what torchvision's
    ``Resize`` does on a PIL image with NEAREST interpolation; PIL samples source pixel
    ``floor((i + 0.5) * in / out)``, unlike OpenCV's ``INTER_NEAREST``, which samples
    ``floor(i * in / out)``), then torchvision ``ToTensor`` and ``> 0.5``.

    The scorer (``--protocol paper``) passes each defective image's own-folder mask with
    the values stored in the file, not binarised first, so what survives here is what
    survives in the authors' pipeline.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        The mask with the values stored in its file (not binarised).

        * ``uint8``: ``ToTensor`` divides by 255 (in float32), so a pixel is a defect
          exactly when its stored value is >= 128. A mask saved with values 0/1 therefore
          comes out empty, as in the authors' code (a warning is logged).
        * ``bool``: True is taken as 255 (torchvision multiplies PIL mode ``"1"`` by 255).
        * ``uint16``: resized by PIL as mode ``"I;16"``; torchvision's ``ToTensor`` does not
          divide 16-bit images by 255, so every non-zero value is a defect. (Caveat: current
          torchvision casts ``"I;16"`` to int16, so in the authors' pipeline values >= 32768
          would wrap negative and be dropped, and older Pillow opened 16-bit PNGs as mode
          ``"I"``, where they are not. We keep every non-zero value; 3CAD masks are 8-bit.)

        Other dtypes raise :class:`TypeError`.
    size : int, optional
        Output side, default :data:`PAPER_SIZE`.
    image_id : str, optional
        Names the image in logged warnings.

    Returns
    -------
    ndarray of shape (size, size), bool
        The binarised resized mask. A warning is logged when a mask with defect pixels
        comes out empty (the defect vanished in the resize, or the values are below 128).
    """
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if m.dtype == np.bool_:
        m = m.astype(np.uint8) * np.uint8(255)
    if m.dtype == np.uint8:
        src = np.ascontiguousarray(m)
        resized = np.asarray(Image.fromarray(src).resize((size, size), Image.Resampling.NEAREST))
        out = (resized.astype(np.float32) / np.float32(255.0)) > 0.5
    elif m.dtype == np.uint16:
        src = np.ascontiguousarray(m, dtype=np.uint16)  # native byte order
        resized = np.asarray(Image.fromarray(src).resize((size, size), Image.Resampling.NEAREST))
        out = resized > 0
    else:
        raise TypeError(f"mask dtype must be uint8, bool or uint16, got {m.dtype}")
    if not out.any() and m.any():
        if m.dtype == np.uint8 and int(m.max()) < 128:
            why = (f"all its values are below 128 (max {int(m.max())}; a 0/1 mask?) and "
                   "ToTensor/255 > 0.5 drops them")
        else:
            why = f"its defect vanished in the nearest-neighbour resize to {size}x{size}"
        name = f" of image {image_id}" if image_id else ""
        log.warning("paper protocol: the non-empty mask%s (shape %s) became empty: %s; the "
                    "image counts as good for I-AUROC and has no PRO regions",
                    name, m.shape, why)
    return out


def paper_image_label(resized_mask: np.ndarray) -> int:
    """I-AUROC label of an image in the paper protocol: max of its resized mask.

    Parameters
    ----------
    resized_mask : ndarray of shape (size, size)
        Output of :func:`resize_mask_paper` (any dtype; non-zero = defect). For a good
        image pass an all-zero mask.

    Returns
    -------
    int
        1 when any pixel is a defect, else 0.
    """
    return int(np.any(np.asarray(resized_mask)))


# --------------------------------------------------------------------------- maps


def resize_map_paper(amap: np.ndarray, *, size: int = PAPER_SIZE) -> np.ndarray:
    """Bring an anomaly map onto the paper's ``size x size`` grid.

    Parameters
    ----------
    amap : ndarray of shape (H, W)
        Real-valued anomaly map.
    size : int, optional
        Output side, default :data:`PAPER_SIZE`.

    Returns
    -------
    ndarray of shape (size, size)
        ``amap`` itself (same object, no copy, no cast) when it is already
        ``size x size``; otherwise the map resized bilinearly (half-pixel centres, the rule
        of ``cv2.resize`` with ``INTER_LINEAR``) in float64 by :func:`eval.resize.resize_bilinear`,
        which gives the same values on every machine. Values are never rescaled.
    """
    a = np.asarray(amap)
    if a.ndim != 2:
        raise ValueError(f"anomaly map must be 2-D (H, W), got shape {a.shape}")
    if a.shape == (size, size):
        return amap if isinstance(amap, np.ndarray) else a
    from .resize import resize_bilinear

    return resize_bilinear(a, (size, size), np.float64)


# --------------------------------------------------------------------------- PRO


def paper_thresholds(amap: np.ndarray, *, n_thresholds: int = PAPER_THRESHOLDS) -> np.ndarray:
    """The thresholds of the authors' ``compute_pro`` for one map.

    ``np.arange(min, max, (max - min) / n_thresholds)`` on the float64 map, exactly as
    written there. Because of rounding in ``ceil((max - min) / step)`` this gives
    ``n_thresholds`` values for most maps but ``n_thresholds + 1`` for some (about 6 %
    of random float64 ranges with 200); the extra one lies within rounding of ``max``
    (below, equal or above it: when not below, no pixel is above it and the curve gets
    the point FPR 0, PRO 0).

    Parameters
    ----------
    amap : ndarray of shape (H, W)
        Anomaly map (converted to float64).
    n_thresholds : int, optional
        ``num_th``, default :data:`PAPER_THRESHOLDS`.

    Returns
    -------
    ndarray of shape (n,), float64
        Non-decreasing thresholds; a pixel is positive when its value is ``> t``.
        Raises :class:`ValueError` for a constant or non-finite map.
    """
    a = np.asarray(amap, dtype=np.float64)
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("anomaly map has non-finite values")
    if not hi > lo:
        raise ValueError("anomaly map is constant")
    return np.arange(lo, hi, (hi - lo) / n_thresholds)


def _nan(image_id: str | None, why: str) -> float:
    name = f" for image {image_id}" if image_id else ""
    log.warning("paper protocol: P-PRO is undefined%s (%s); it is NaN and left out of the "
                "category mean (the authors' code fails or gives NaN here)", name, why)
    return float("nan")


def per_image_pro_paper(amap: np.ndarray, mask: np.ndarray, *,
                        n_thresholds: int = PAPER_THRESHOLDS,
                        fpr_limit: float = PAPER_FPR_LIMIT,
                        connectivity: int = 8,
                        image_id: str | None = None) -> float:
    """The authors' per-image PRO area (RD-style ``compute_pro`` on one image).

    Thresholds are :func:`paper_thresholds` of the map (float64). At each threshold ``t``
    a pixel is positive when its value is ``> t``; PRO(t) is the mean over the regions
    (8-connected components of ``mask``) of the fraction of the region's pixels that are
    positive; FPR(t) is the fraction of the image's normal pixels that are positive.
    Points with FPR < ``fpr_limit`` are kept, their FPR divided by the largest kept FPR
    (not by ``fpr_limit``), and the area is ``sklearn.metrics.auc`` (trapezoid) of PRO
    over that normalised FPR.

    Vectorised (each pixel's number of thresholds below its value by one binary search,
    then counts per region by ``bincount``); equal to the 200-pass loop to rounding of
    the mean over regions (< 1e-15).

    Parameters
    ----------
    amap : ndarray of shape (H, W)
        Anomaly map on the paper grid, any real dtype (converted to float64, exactly as
        the authors' maps are float64).
    mask : ndarray of shape (H, W)
        Binarised ground truth (e.g. from :func:`resize_mask_paper`); non-zero = defect.
    n_thresholds : int, optional
        Default :data:`PAPER_THRESHOLDS`.
    fpr_limit : float, optional
        Default :data:`PAPER_FPR_LIMIT`; points are kept when FPR is strictly below it.
    connectivity : {8, 4}, optional
        Pixel connectivity of the regions; 8 (the authors' ``skimage.measure.label``
        default in 2-D) unless a protocol says otherwise.
    image_id : str, optional
        Names the image in logged warnings.

    Returns
    -------
    float
        The area, in [0, 1]. NaN with a logged warning when it is undefined: no defect
        pixel (e.g. it vanished in the resize), no normal pixel, a non-finite or constant
        map, fewer than two points with FPR < ``fpr_limit``, or every kept FPR is 0.
    """
    from sklearn.metrics import auc

    a = np.asarray(amap)
    m = np.asarray(mask)
    if a.ndim != 2 or m.shape != a.shape:
        raise ValueError(f"map and mask must be 2-D of the same shape, got {a.shape} and {m.shape}")
    if int(n_thresholds) != n_thresholds or n_thresholds < 1:
        raise ValueError(f"n_thresholds must be a positive integer, got {n_thresholds}")
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    a = np.asarray(a, dtype=np.float64)
    m = m > 0

    n_pos = int(np.count_nonzero(m))
    n_neg = m.size - n_pos
    if n_pos == 0:
        return _nan(image_id, "the mask has no defect pixel (did the defect vanish in the resize?)")
    if n_neg == 0:
        return _nan(image_id, "the mask has no normal pixel")
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return _nan(image_id, "the anomaly map has non-finite values")
    if not hi > lo:
        return _nan(image_id, "the anomaly map is constant")

    th = np.arange(lo, hi, (hi - lo) / int(n_thresholds))  # = paper_thresholds(a)
    n_th = th.size
    if n_th > 1 and np.any(th[1:] < th[:-1]):  # pragma: no cover - arange is monotone
        raise RuntimeError("thresholds are not non-decreasing")

    # below[i] = number of thresholds strictly below the pixel's value, so that the pixel
    # is positive (value > th[k]) exactly for k < below[i].
    below = np.searchsorted(th, a.ravel(), side="left")
    flat_mask = m.ravel()

    # FPR(k) = #{normal pixels with below > k} / n_neg
    neg_hist = np.bincount(below[~flat_mask], minlength=n_th + 1)
    fp = np.cumsum(neg_hist[::-1])[::-1][1:]          # (n_th,) sum over below > k
    fpr = fp / n_neg

    # PRO(k) = mean over regions r of #{pixels of r with below > k} / area_r
    import cv2

    n_lab, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S)
    n_reg = n_lab - 1
    reg = labels.ravel()[flat_mask].astype(np.int64) - 1
    hist = np.bincount(reg * (n_th + 1) + below[flat_mask],
                       minlength=n_reg * (n_th + 1)).reshape(n_reg, n_th + 1)
    tail = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # tail[:, k] = sum over below >= k
    area = tail[:, 0]
    pro = (tail[:, 1:] / area[:, None]).mean(axis=0)  # (n_th,)

    keep = fpr < fpr_limit
    n_keep = int(np.count_nonzero(keep))
    if n_keep < 2:
        return _nan(image_id, f"only {n_keep} of {n_th} curve points have FPR < {fpr_limit}")
    x = fpr[keep]
    x_max = x.max()
    if not x_max > 0:
        return _nan(image_id, "every kept curve point has FPR 0, so FPR / max(FPR) is 0 / 0")
    return float(auc(x / x_max, pro[keep]))


class PaperProMean(NamedTuple):
    """Category P-PRO of the paper protocol."""

    value: float
    """Unweighted mean over the defective images with a defined PRO (NaN if none)."""
    n_images: int
    """Number of per-image values given."""
    n_skipped: int
    """How many of them were NaN and left out."""


def mean_pro_paper(values: Iterable[float], *, category: str | None = None) -> PaperProMean:
    """Unweighted mean of per-image PRO areas, skipping NaN images.

    Parameters
    ----------
    values : iterable of float, length n
        :func:`per_image_pro_paper` of each defective image of a category.
    category : str, optional
        Names the category in logged warnings.

    Returns
    -------
    PaperProMean
        ``(value, n_images, n_skipped)``. A warning is logged when images are skipped;
        ``value`` is NaN when no image has a defined PRO.
    """
    v = np.asarray(list(values), dtype=np.float64).ravel()
    ok = ~np.isnan(v)
    n_skipped = int(v.size - np.count_nonzero(ok))
    name = f" of {category}" if category else ""
    if n_skipped:
        log.warning("paper protocol: P-PRO%s skips %d of %d defective images with undefined PRO",
                    name, n_skipped, v.size)
    if not ok.any():
        why = "no image has a defined PRO" if v.size else "no defective image"
        log.warning("paper protocol: P-PRO%s is NaN (%s)", name, why)
        return PaperProMean(math.nan, int(v.size), n_skipped)
    return PaperProMean(float(np.mean(v[ok])), int(v.size), n_skipped)
