"""threecad.pngdecode: the 8-bit greyscale decoder gives libpng's values, or steps aside."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from threecad.pngdecode import decode_gray8
from threecad.regions import MaskReadError, decode_mask


def _libpng(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _masks(rng: np.random.Generator) -> list[np.ndarray]:
    """Sparse binary masks, 0/1 and 0/255, and noise (every filter type is chosen for some rows)."""
    out = []
    for h, w in [(1, 1), (1, 7), (9, 1), (37, 53), (211, 140)]:
        m = np.zeros((h, w), np.uint8)
        for _ in range(3):
            cv2.ellipse(m, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                        (int(rng.integers(1, 20)), int(rng.integers(1, 20))), 0, 0, 360, 255, -1)
        out += [m, (m > 0).astype(np.uint8), rng.integers(0, 256, (h, w)).astype(np.uint8),
                np.cumsum(rng.integers(0, 3, (h, w)), axis=1).astype(np.uint8)]
    return out


def _encodings(m: np.ndarray) -> list[bytes]:
    """The mask as OpenCV and Pillow write it, at several compression levels and filters."""
    out = [cv2.imencode(".png", m, [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes() for level in (0, 1, 9)]
    out += [cv2.imencode(".png", m, [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])[1].tobytes()]
    for kwargs in ({}, {"optimize": True}, {"compress_level": 0}, {"dpi": (72, 72)}):
        buf = io.BytesIO()
        Image.fromarray(m, "L").save(buf, "PNG", **kwargs)
        out.append(buf.getvalue())
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(m: np.ndarray, filters: list[int], *, extra: list[bytes] = (), split: int = 0, depth: int = 8,
         colour: int = 0) -> bytes:
    """A PNG written by hand: each row filtered with its filter of ``filters`` (cycled)."""
    h, w = m.shape
    rows = []
    prev = np.zeros(w, np.int32)
    for y in range(h):
        f = filters[y % len(filters)]
        cur = m[y].astype(np.int32)
        left = np.concatenate([[0], cur[:-1]])
        corner = np.concatenate([[0], prev[:-1]])
        if f == 0:
            pred = np.zeros(w, np.int32)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - corner
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - corner)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, corner))
        rows.append(bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
        prev = cur
    stream = zlib.compress(b"".join(rows))
    parts = [stream[:split], stream[split:]] if split else [stream]
    head = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", head) + b"".join(extra)
            + b"".join(_chunk(b"IDAT", p) for p in parts) + _chunk(b"IEND", b""))


def test_decode_gray8_gives_libpngs_values_for_what_opencv_and_pillow_write():
    rng = np.random.default_rng(0)
    seen = 0
    for m in _masks(rng):
        for data in _encodings(m):
            got = decode_gray8(data)
            assert got is not None, "a valid 8-bit greyscale PNG took the slow path"
            assert got.dtype == np.uint8 and np.array_equal(got, _libpng(data)) and np.array_equal(got, m)
            seen += 1
    assert seen == 20 * 8


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
def test_every_filter_type(filters):
    rng = np.random.default_rng(len(filters) * 10 + filters[0])
    for m in (rng.integers(0, 256, (13, 29)).astype(np.uint8), np.full((5, 6), 255, np.uint8)):
        data = _png(m, filters)
        assert np.array_equal(_libpng(data), m)
        assert np.array_equal(decode_gray8(data), m)


def test_split_idat_and_harmless_chunks():
    m = np.random.default_rng(3).integers(0, 256, (20, 17)).astype(np.uint8)
    data = _png(m, [1, 4], split=5, extra=[_chunk(b"tEXt", b"Comment\0hi"), _chunk(b"pHYs", bytes(9))])
    assert np.array_equal(decode_gray8(data), m)


@pytest.mark.parametrize("case", ["trns", "gama", "unknown", "depth16", "rgb", "interlace", "idat_apart",
                                  "after_iend", "bad_crc", "bad_ancillary_crc", "bad_filter", "short_stream",
                                  "long_stream", "no_iend", "truncated", "bad_adler"])
def test_anything_else_is_left_to_opencv(case):
    """None for each file that is not plain valid 8-bit greyscale; decode_mask then gives what
    OpenCV gives (the values, or its refusal)."""
    m = np.random.default_rng(5).integers(0, 256, (9, 11)).astype(np.uint8)
    data = _png(m, [1])
    head = data[:33]
    idat_at = 33
    if case == "trns":
        data = head + _chunk(b"tRNS", b"\0\5") + data[33:]
    elif case == "gama":
        data = head + _chunk(b"gAMA", struct.pack(">I", 45455)) + data[33:]
    elif case == "unknown":
        data = head + _chunk(b"abCd", b"x") + data[33:]
    elif case == "depth16":
        data = _png(m, [0], depth=16)
    elif case == "rgb":
        data = _png(m, [0], colour=2)
    elif case == "interlace":
        ihdr = struct.pack(">IIBBBBB", 11, 9, 8, 0, 0, 0, 1)
        data = data[:8] + _chunk(b"IHDR", ihdr) + data[33:]
    elif case == "idat_apart":
        data = _png(m, [1], split=4)
        first_end = 33 + 12 + 4
        data = data[:first_end] + _chunk(b"tEXt", b"a\0b") + data[first_end:]
    elif case == "after_iend":
        data += b"\0"
    elif case == "bad_crc":
        data = data[:-13] + bytes([data[-13] ^ 1]) + data[-12:]  # the last IDAT byte's CRC no longer matches
    elif case == "bad_ancillary_crc":
        bad = bytearray(_chunk(b"tEXt", b"a\0b"))
        bad[-1] ^= 1
        data = head + bytes(bad) + data[33:]
    elif case == "bad_filter":
        raw = bytearray(zlib.decompress(data[idat_at + 8:-16]))
        raw[0] = 7
        data = head + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    elif case in ("short_stream", "long_stream"):
        raw = zlib.decompress(data[idat_at + 8:-16])
        raw = raw[:-1] if case == "short_stream" else raw + b"\0"
        data = head + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    elif case == "no_iend":
        data = data[:-12]
    elif case == "truncated":
        data = data[:40]
    elif case == "bad_adler":
        stream = bytearray(data[idat_at + 8:-16])
        stream[-1] ^= 1
        data = head + _chunk(b"IDAT", bytes(stream)) + _chunk(b"IEND", b"")
    assert decode_gray8(data) is None
    expected = _libpng(data)
    if expected is None:
        with pytest.raises(MaskReadError):
            decode_mask(data, "x.png", compiled=True)
    else:
        want = expected.max(axis=2) if expected.ndim == 3 else expected
        assert np.array_equal(decode_mask(data, "x.png", compiled=True), want)


def test_random_damage_changes_nothing_but_speed():
    """Flipped bytes anywhere in valid files: whenever the fast path decodes, libpng decodes the
    same values (a damaged file it accepts is one libpng accepts alike)."""
    rng = np.random.default_rng(11)
    valid = [data for m in _masks(rng)[:8] for data in _encodings(m)[:3]]
    fast = 0
    for _ in range(600):
        data = bytearray(valid[int(rng.integers(0, len(valid)))])
        for _ in range(int(rng.integers(1, 3))):
            data[int(rng.integers(8, len(data)))] ^= 1 << int(rng.integers(0, 8))
        got = decode_gray8(bytes(data))
        if got is not None:
            fast += 1
            assert np.array_equal(got, _libpng(bytes(data)))
    assert fast < 600  # most damage is refused (CRCs); what passes is compared above


def test_decode_mask_compiled_or_not_gives_the_same(tmp_path):
    rng = np.random.default_rng(2)
    for m in _masks(rng)[:8]:
        for data in _encodings(m)[:2]:
            assert np.array_equal(decode_mask(data, "x.png", compiled=True), decode_mask(data, "x.png"))
