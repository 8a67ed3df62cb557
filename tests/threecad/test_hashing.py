"""threecad.hashing: the one sha256 helper, against hashlib on the whole content."""

from __future__ import annotations

import hashlib
import os

from threecad.hashing import bytes_sha256, file_sha256


def test_file_sha256_reads_in_chunks_and_reports_them(tmp_path):
    data = os.urandom(3 * 1000 + 17)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    seen = []
    assert file_sha256(p, chunk_size=1000, on_chunk=seen.append) == hashlib.sha256(data).hexdigest()
    assert seen == [1000, 1000, 1000, 17]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest() == bytes_sha256(b"")
