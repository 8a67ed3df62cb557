"""threecad.fileio: the PNG header reader against Pillow."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from threecad.fileio import PNG_HEADER_BYTES, png_header
from threecad.manifest import _image_header


def _png(width: int, height: int, depth: int, colour: int, *, interlace: int = 0) -> bytes:
    """A whole PNG of zero pixels written by hand (any colour type and depth Pillow reads)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = 1 + (width * channels * depth + 7) // 8
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
    if colour == 3:
        body += chunk(b"PLTE", bytes(3 * 4))
    body += chunk(b"IDAT", zlib.compress(bytes(row * height))) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


KINDS = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8), (4, 8), (4, 16),
         (6, 8), (6, 16)]


@pytest.mark.parametrize("colour,depth", KINDS)
def test_png_header_gives_what_pillow_reads(tmp_path, colour, depth):
    path = tmp_path / "x.png"
    path.write_bytes(_png(37, 21, depth, colour))
    with Image.open(path) as im:
        expected = (im.size[1], im.size[0], len(im.getbands()))
    assert png_header(path.read_bytes()) == expected
    assert expected[:2] == (21, 37)
    assert _image_header(path) == expected


def test_png_header_of_pillow_files(tmp_path):
    images = [Image.fromarray(np.zeros((5, 9), np.uint8)), Image.fromarray(np.zeros((5, 9, 3), np.uint8)),
              Image.fromarray(np.zeros((5, 9, 4), np.uint8)), Image.fromarray(np.zeros((5, 9), np.uint16)),
              Image.fromarray(np.zeros((5, 9), np.uint8)).convert("1"),
              Image.fromarray(np.zeros((5, 9), np.uint8)).convert("P")]
    for i, image in enumerate(images):
        path = tmp_path / f"{i}.png"
        image.save(path)
        with Image.open(path) as im:
            assert png_header(path.read_bytes()) == (im.size[1], im.size[0], len(im.getbands()))


@pytest.mark.parametrize("damage", ["crc", "length", "type", "colour", "depth", "compression", "filter",
                                    "interlace", "short", "signature"])
def test_png_header_leaves_a_doubtful_header_to_pillow(tmp_path, damage):
    """Anything but a well-formed IHDR gives None, and the manifest then asks Pillow (which
    raises for a broken one, as before)."""
    data = bytearray(_png(8, 6, 8, 0))
    where = {"crc": 29, "length": 11, "type": 13, "colour": 25, "depth": 24, "compression": 26, "filter": 27,
             "interlace": 28, "signature": 1}
    if damage == "short":
        data = data[:PNG_HEADER_BYTES - 1]
    else:
        data[where[damage]] ^= 0x07 if damage in ("colour", "depth") else 0x41
        if damage == "colour":
            data[25] = 5  # no such colour type
    assert png_header(bytes(data)) is None
    path = tmp_path / "x.png"
    path.write_bytes(bytes(data))
    assert _outcome(_image_header, path) == _outcome(_pillow_header, path)


def _pillow_header(path):
    with Image.open(path) as im:
        return im.size[1], im.size[0], len(im.getbands())


def _outcome(read, path):
    """What ``read(path)`` returns, or the type of what it raises."""
    try:
        return read(path)
    except Exception as exc:  # noqa: BLE001 - the outcome is compared, whatever it is
        return type(exc)


def test_png_header_of_an_interlaced_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png(8, 6, 8, 2, interlace=1))
    assert png_header(path.read_bytes()) == _pillow_header(path) == (6, 8, 3)
