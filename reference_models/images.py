"""Reading dataset images for the reference models: RGB, squashed to a square size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from threecad.errors import DataError

__all__ = ["read_rgb"]


def read_rgb(path: str | Path, size: int | None) -> np.ndarray:
    """Decode an image and squash it to ``size`` x ``size`` (no crop), as the 3CAD protocol does.

    Grey images become three equal channels, alpha is dropped, 16-bit images are scaled to
    8 bits (OpenCV's ``IMREAD_COLOR``).

    Parameters
    ----------
    path : path
        A PNG (or any format OpenCV decodes).
    size : int or None
        Output height and width (shrinking both sides: area averaging; else bilinear);
        ``None``: the file's own size.

    Returns
    -------
    ndarray
        ``(size, size, 3)`` (or ``(H, W, 3)``) uint8, RGB.

    Raises
    ------
    DataError
        The file cannot be read or decoded.
    """
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    # an 8-bit grey PNG decoded as grey and resized as one channel: the same values as decoding
    # it to three equal channels (what IMREAD_COLOR does) and resizing those, in about 70 % of the time
    grey = data is not None and _is_8bit_grey_png(data)
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    img = cv2.imdecode(data, flag) if data is not None and data.size else None
    if img is None:
        raise DataError(f"{path}: cannot read or decode this image (run 'threecad validate' on the tree)")
    h, w = img.shape[:2]
    if size is not None and (h, w) != (size, size):
        shrink = h > size and w > size
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if grey:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(img[:, :, ::-1])


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_8bit_grey_png(data: np.ndarray) -> bool:
    """Whether the bytes start a PNG whose header says 8-bit greyscale (colour type 0, no alpha)."""
    return (data.size > 26 and data[:8].tobytes() == _PNG_SIGNATURE and data[12:16].tobytes() == b"IHDR"
            and int(data[24]) == 8 and int(data[25]) == 0)
