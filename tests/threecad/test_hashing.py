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


def test_update_from_file_feeds_the_rest_up_to_the_limit(tmp_path):
    from threecad.hashing import new_sha256, update_from_file

    data = os.urandom(2500)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    with open(p, "rb") as fh:
        head = fh.read(100)
        digest = new_sha256()
        digest.update(head)
        assert update_from_file(digest, fh, limit=10_000, chunk_size=1000) == 2400
    assert digest.hexdigest() == file_sha256(p)
    with open(p, "rb") as fh:
        digest = new_sha256()
        assert update_from_file(digest, fh, limit=1234, chunk_size=1000) == 1234
        assert fh.tell() == 1234
    assert digest.hexdigest() == hashlib.sha256(data[:1234]).hexdigest()
