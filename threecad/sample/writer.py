"""Writing the sample tree: validation, atomic build in a sibling folder, PNG files, truth."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from ..categories import CATEGORIES, Category, get_category
from ..labels import LabelMap
from ..progress import progress as progress_bar
from ..schema import GOOD_FOLDER
from .catalog import CHANNELS, NAME_MODES, SCALE_PLANS, SCALES, ScalePlan
from .compose import render_image
from .plan import image_rng, part_rng, plan_category
from .truth import SampleImage, SampleTruth

__all__ = ["write_sample"]

log = logging.getLogger(__name__)

# Photos: fast settings (noisy pixels gain little from LZ matching); masks: zlib's default
# strategy, which shrinks their long runs of zeros to almost nothing.
_PNG_IMAGE = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
              cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, cv2.IMWRITE_PNG_FILTER,
              cv2.IMWRITE_PNG_FILTER_SUB]
_PNG_MASK = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def _resolve(categories: Sequence[str] | str | None) -> list[Category]:
    """Categories to write, in paper order, without duplicates."""
    if categories is None:
        return list(CATEGORIES)
    if isinstance(categories, str):
        categories = [categories]
    wanted = {get_category(name).code for name in categories}
    if not wanted:
        raise ValueError("categories is empty; pass None for all eight")
    return [c for c in CATEGORIES if c.code in wanted]


def _check_target(out: Path) -> None:
    """Raise FileExistsError unless ``out`` is missing or an empty directory."""
    if out.is_dir():
        if any(out.iterdir()):
            raise FileExistsError(f"{out} already exists and is not empty")
    elif out.exists() or out.is_symlink():
        raise FileExistsError(f"{out} already exists and is not a directory")


def _make_temp(out: Path) -> Path:
    """A new empty folder next to ``out`` (``<out>.partial-<random>``)."""
    while True:
        tmp = out.with_name(f"{out.name}.partial-{secrets.token_hex(4)}")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _write_png(path: Path, array: np.ndarray, params: list[int]) -> None:
    """Write a grey or RGB uint8 array as PNG (paths OpenCV can't open itself included)."""
    if array.ndim == 3:
        array = np.ascontiguousarray(array[..., ::-1])  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", array, params)
    if not ok:  # pragma: no cover - encoding a plain uint8 array does not fail
        raise OSError(f"could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def _write_category(root: Path, cat: Category, plan: ScalePlan, seed: int,
                    folder_name: Callable[[str], str], bar=None) -> list[SampleImage]:
    """Draw and write every image of one category under ``root`` (``bar``: progress, one per image)."""
    channels = CHANNELS[cat.code]
    written: list[SampleImage] = []
    paths: dict[tuple[str, int], str] = {}
    for item in plan_category(cat, plan, seed):
        drawn = render_image(cat.code, item, channels, part_rng(seed, cat, item), image_rng(seed, cat, item))
        mask_folders = tuple(folder_name(t) for t in item.types)
        folder = mask_folders[0] if item.types else GOOD_FOLDER
        base = root / cat.folder
        _write_png(base / item.split / folder / f"{item.stem}.png", drawn.image, _PNG_IMAGE)
        for mf, mask in zip(mask_folders, drawn.masks):
            _write_png(base / "ground_truth" / mf / f"{item.stem}.png", mask, _PNG_MASK)
        written.append(SampleImage(
            category=cat.folder, code=cat.code, split=item.split, folder=folder,
            types=item.types, stem=item.stem, height=item.height, width=item.width,
            n_regions=len(drawn.region_areas), region_areas=drawn.region_areas,
            channels=channels, mask_folders=mask_folders,
            same_part_as=paths[item.part] if item.part else ""))
        paths[(item.split, item.index)] = written[-1].path
        if bar is not None:
            bar.update()
    log.info("%s: %d images (%d defective)", cat.folder, len(written),
             sum(1 for i in written if i.types))
    return written


def write_sample(out: str | Path, *, seed: int = 0, scale: str = "tiny", names: str = "english",
                 categories: Sequence[str] | None = None, progress: bool = False) -> SampleTruth:
    """Write a synthetic dataset in the real 3CAD layout and return what it holds.

    Parameters
    ----------
    out : str or Path
        Root folder to create; must not exist or be an empty directory.
    seed : int
        Non-negative seed; the same seed, scale, names and categories give byte-identical files.
    scale : str
        ``tiny`` (seconds), ``demo`` (the demo's: 10 good and at least 10 defective test
        images per category, small images) or ``small`` (about a minute); see :data:`SCALES`.
    names : str
        ``english`` or ``pinyin`` names for the defect folders.
    categories : sequence of str, optional
        Subset of categories (codes, folder names or aliases); all eight by default.
    progress : bool
        Report progress (:func:`threecad.progress.progress`).

    Returns
    -------
    SampleTruth

    Raises
    ------
    FileExistsError
        ``out`` exists and is not an empty directory.
    ValueError
        Unknown ``scale`` or ``names``, a negative seed, or an empty ``categories``.
    threecad.categories.UnknownCategoryError
        A category name matches none of the eight.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if names not in NAME_MODES:
        raise ValueError(f"unknown names {names!r}; expected one of {', '.join(NAME_MODES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    cats = _resolve(categories)
    out = Path(out)
    _check_target(out)
    labels = LabelMap()
    folder_name = labels.to_pinyin if names == "pinyin" else (lambda english: english)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp(out)
    try:
        images: list[SampleImage] = []
        total = sum(len(plan_category(cat, SCALE_PLANS[scale], seed)) for cat in cats) if progress else None
        with progress_bar(total, "sample", unit="img", enabled=progress) as bar:
            for cat in cats:
                images += _write_category(tmp, cat, SCALE_PLANS[scale], seed, folder_name, bar)
        _check_target(out)
        try:
            os.replace(tmp, out)  # an empty directory at ``out`` is replaced atomically
        except OSError as exc:
            raise FileExistsError(
                f"{out} appeared while the sample was being built ({exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d images to %s (seed %d, scale %s, %s names)", len(images), out, seed,
             scale, names)
    return SampleTruth(root=out, seed=seed, scale=scale, names=names, images=tuple(images))
