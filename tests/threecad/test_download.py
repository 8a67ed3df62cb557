"""``threecad download`` against a local HTTP server (no internet): transfers, resume, Drive's
confirm pages, checksums, safe extraction, idempotence, and the CLI end to end."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from threecad.download import (RECORD_NAME, ArchiveError, ChecksumError, DownloadError, DriveError,
                               HTTPStatusError, NetworkError, Resource, UnsafeArchiveError, download_drive_file,
                               download_file, extract_archive, fetch_dataset, inspect_archive, read_record,
                               resource_for)
from threecad.download.dataset import default_dest, download_dir
from threecad.download.drive import find_confirm
from threecad.download.extract import Member, _Budget, _copy_limited
from threecad.download.http import part_path
from threecad.errors import UsageError

from .download_server import UUID, DownloadServer

ENGLISH_ID = "1BIX0H8TZp0wmrAnXPw8_aCAIX1j1Fzwz"
BLOB = random.Random(0).randbytes(200_000)  # incompressible, so archives are ~200 kB
TREE = {
    "3CAD/Aluminum_Ipad/train/good/000000.png": b"\x89PNG\r\n\x1a\nfake image 0",
    "3CAD/Aluminum_Ipad/train/good/000001.png": BLOB,
    "3CAD/Aluminum_Ipad/test/good/000000.png": b"\x89PNG\r\n\x1a\nfake image 2",
}


# --- archives built by the tests -------------------------------------------------------------

def zip_bytes(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def tar_bytes(entries: dict[str, bytes], *, mode: str = "w:gz", extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def link_info(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_tree(dest: Path) -> None:
    for name, data in TREE.items():
        assert (dest / name.split("/", 1)[1]).read_bytes() == data


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".extract-" in p.name or ".old-" in p.name)


@pytest.fixture
def server():
    with DownloadServer() as srv:
        yield srv


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "data" / "3CAD"


def fetch(resource=None, dest=None, **kw):
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 30.0)  # generous: a loaded machine must not turn a local transfer into a retry
    return fetch_dataset(resource or resource_for("english"), dest, **kw)


def cli(*args, env: dict[str, str] | None = None, rc: int | None = 0) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "threecad", "download", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    if rc is not None:
        assert proc.returncode == rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- CLI end to end ---------------------------------------------------------------------------

def test_cli_good_zip_then_idempotent_then_force(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data)
    first = cli("--url", url, "--dest", dest, "--no-progress")
    assert_tree(dest)
    assert sha(data) in first.stderr and f"--sha256 {sha(data)}" in first.stderr  # how to pin it next time
    assert not download_dir(dest).exists() and leftovers(dest.parent) == []
    record_time = (dest / RECORD_NAME).stat().st_mtime_ns
    n = len(server.requests)

    again = cli("--url", url, "--dest", dest, "--no-progress")
    assert "already holds" in again.stderr and "nothing to do" in again.stderr
    assert len(server.requests) == n and (dest / RECORD_NAME).stat().st_mtime_ns == record_time

    pinned = cli("--url", url, "--dest", dest, "--sha256", sha(data), "--no-progress")  # same digest: no-op
    assert "already holds" in pinned.stderr and len(server.requests) == n

    cli("--url", url, "--dest", dest, "--force", "--no-progress")
    assert len(server.requests) == n + 1
    assert_tree(dest)
    assert leftovers(dest.parent) == []


def test_cli_wrong_digest_keeps_file_aside(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data)
    wrong = "ab" * 32
    proc = cli("--url", url, "--dest", dest, "--sha256", wrong, "--no-progress", rc=1)
    assert wrong in proc.stderr and sha(data) in proc.stderr and "mismatch" in proc.stderr
    aside = download_dir(dest) / f"3CAD.zip.bad-{sha(data)[:12]}"
    assert aside.read_bytes() == data and str(aside) in proc.stderr
    assert not dest.exists()


def test_cli_drive_confirm_page_via_env(server, dest):
    data = zip_bytes(TREE)
    server.add_drive(ENGLISH_ID, data, style="form")
    cli("--dest", dest, "--no-progress", env={"THREECAD_DRIVE_URL": server.drive_url})
    assert_tree(dest)
    record = read_record(dest)
    assert record.source_kind == "drive" and record.source == ENGLISH_ID and record.sha256 == sha(data)


def test_cli_archive_import_and_refusals(tmp_path, dest):
    archive = tmp_path / "3CAD.tar.gz"
    archive.write_bytes(tar_bytes(TREE))
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("not threecad's")
    proc = cli("--archive", archive, "--dest", other, rc=2)  # non-empty folder without a record
    assert "refusing to overwrite" in proc.stderr and (other / "mine.txt").exists()
    cli("--archive", tmp_path / "missing.zip", "--dest", dest, rc=2)
    cli("--archive", archive, "--dest", dest, "--sha256", "xyz", rc=2)

    cli("--archive", archive, "--dest", dest, "--no-progress")
    assert_tree(dest)
    assert archive.exists()  # an imported archive is left where it is
    record = read_record(dest)
    assert record.source_kind == "archive" and record.source == str(archive.resolve())
    assert record.archive_format == "tar.gz"
    proc = cli("--archive", archive, "--dest", dest, "--dtd", rc=2)  # dest holds another resource
    assert "--force" in proc.stderr


def test_cli_unreachable_network_fails_fast(dest):
    url = f"http://127.0.0.1:{closed_port()}/3CAD.zip"
    proc = cli("--url", url, "--dest", dest, "--retries", "1", "--timeout", "1", rc=1)
    assert "1 attempt" in proc.stderr  # one try, no retry loop
    assert "cannot download" in proc.stderr and url in proc.stderr and "--archive" not in proc.stderr
    assert not dest.exists()


def test_cli_unsafe_archive_exit_1(tmp_path, dest):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_bytes({"3CAD/ok.txt": b"ok", "../evil.txt": b"x"}))
    proc = cli("--archive", archive, "--dest", dest, rc=1)
    assert "../evil.txt" in proc.stderr
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()


# --- transfers --------------------------------------------------------------------------------

def test_tar_gz_over_http_with_pinned_digest(server, dest):
    data = tar_bytes(TREE)
    url = server.add_file("3CAD.tar.gz", data, content_type="application/gzip")
    out = fetch(dest=dest, url=url, sha256=sha(data).upper())
    assert_tree(dest) and out.pinned and not out.skipped
    assert out.record.sha256_pinned and out.record.archive_format == "tar.gz"


def test_resume_after_cut_within_one_run(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data, cut_after=60_000)
    out = fetch(dest=dest, url=url, retries=3)
    reqs = server.requests_to("/files/")
    assert len(reqs) == 2
    assert "Range" not in reqs[0].headers and reqs[1].headers["Range"] == "bytes=60000-"
    assert out.record.sha256 == sha(data) and out.record.size == len(data)
    assert_tree(dest)


def test_resume_across_runs(server, tmp_path):
    data = zip_bytes(TREE)
    url = server.add_file("a.zip", data, cut_after=50_000)
    target = tmp_path / "dl" / "a.zip"
    with pytest.raises(NetworkError, match="resume"):
        download_file(url, target, retries=1, backoff=0, timeout=5)
    assert part_path(target).stat().st_size == 50_000 and not target.exists()
    result = download_file(url, target, retries=1, backoff=0, timeout=5)
    assert target.read_bytes() == data and result.resumed_from == 50_000
    assert server.requests_to("/files/")[-1].headers["Range"] == "bytes=50000-"
    assert not part_path(target).exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = zip_bytes(TREE)
    url = server.add_file("a.zip", data, ignore_range=True)
    target = tmp_path / "a.zip"
    part_path(target).write_bytes(b"garbage" * 100)
    result = download_file(url, target, retries=1, backoff=0, timeout=5)
    assert target.read_bytes() == data and result.resumed_from == 0
    assert server.requests_to("/files/")[0].headers["Range"] == "bytes=700-"


def test_416_for_complete_part_and_for_oversized_part(server, tmp_path):
    data = b"0123456789" * 100
    url = server.add_file("a.bin", data)
    target = tmp_path / "a.bin"
    part_path(target).write_bytes(data)  # already complete: the server answers 416
    assert download_file(url, target, retries=1, backoff=0).size == len(data)
    assert target.read_bytes() == data
    target.unlink()
    part_path(target).write_bytes(data + b"extra")  # longer than the file: start again
    download_file(url, target, retries=1, backoff=0)
    assert target.read_bytes() == data
    assert [r.headers.get("Range") for r in server.requests_to("/files/")] == ["bytes=1000-", "bytes=1005-", None]


def test_5xx_is_retried_and_4xx_is_not(server, tmp_path):
    url = server.add_file("busy", b"", status=503)
    with pytest.raises(NetworkError, match="HTTP 503"):
        download_file(url, tmp_path / "busy", retries=3, backoff=0)
    assert len(server.requests_to("/files/busy")) == 3
    url = server.add_file("gone", b"", status=404)
    with pytest.raises(HTTPStatusError, match="HTTP 404") as err:
        download_file(url, tmp_path / "gone", retries=3, backoff=0)
    assert err.value.status == 404 and len(server.requests_to("/files/gone")) == 1


def test_unreachable_raises_network_error_quickly(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/x.zip"
    with pytest.raises(NetworkError, match="cannot connect") as err:
        download_file(url, tmp_path / "x.zip", retries=2, backoff=0, timeout=1)
    assert url in str(err.value) and "gave up after 2 attempts" in str(err.value)


def test_html_page_instead_of_archive(server, dest):
    url = server.add_file("page", b"<html><body>login</body></html>", content_type="text/html")
    with pytest.raises(DownloadError, match="web page"):
        fetch(dest=dest, url=url)
    assert not dest.exists()


def test_bad_url_is_a_usage_error(dest):
    with pytest.raises(UsageError, match="--archive"):
        fetch(dest=dest, url="ftp://example.org/3CAD.zip")


# --- Google Drive ------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["form", "cookie", "link", "direct"])
def test_drive_confirm_styles(server, tmp_path, style):
    data = zip_bytes(TREE)
    server.add_drive("FILE", data, style=style)
    result = download_drive_file("FILE", tmp_path / "f.zip", base_url=server.drive_url, retries=1, backoff=0)
    assert (tmp_path / "f.zip").read_bytes() == data and result.size == len(data)
    if style == "form":
        last = server.requests[-1]
        assert last.path == "/download" and last.query["confirm"] == "t" and last.query["uuid"] == UUID


def test_drive_resume_after_cut_through_confirm(server, dest):
    data = zip_bytes(TREE)
    server.add_drive(ENGLISH_ID, data, style="form", cut_after=70_000)
    fetch(dest=dest, drive_url=server.drive_url, retries=3)
    assert_tree(dest)
    served = [r for r in server.requests if r.query.get("uuid") == UUID]
    assert len(served) == 2 and served[1].headers["Range"] == "bytes=70000-"


def test_drive_quota_page_is_a_clear_error(server, dest):
    server.add_drive(ENGLISH_ID, style="quota")
    with pytest.raises(DriveError) as err:
        fetch(dest=dest, drive_url=server.drive_url)
    msg = str(err.value)
    assert "quota" in msg and ENGLISH_ID in msg and "browser" in msg and "--archive" in msg
    assert not dest.exists()


def test_drive_unknown_file_is_a_clear_error(server, tmp_path):
    with pytest.raises(DriveError, match="no such file"):
        download_drive_file("NOPE", tmp_path / "x", base_url=server.drive_url, retries=1, backoff=0)


def test_dtd_falls_back_to_its_drive_mirror(server, tmp_path):
    data = tar_bytes({"dtd/images/banded/banded_0002.jpg": b"jpg", "dtd/labels/labels_joint_anno.txt": b"a"})
    dead = server.add_file("dtd.tar.gz", b"", status=404)
    server.add_drive("DTDMIRROR", data, style="form")
    dtd = Resource(name="dtd", filename="dtd-r1.0.1.tar.gz", url=dead, drive_id="DTDMIRROR", extracts_to="dtd")
    out = fetch(dtd, tmp_path / "dtd", drive_url=server.drive_url)
    assert (tmp_path / "dtd" / "images" / "banded" / "banded_0002.jpg").read_bytes() == b"jpg"
    assert out.record.source_kind == "drive" and out.record.resource == "dtd"


def test_find_confirm_variants():
    page = ('<form id="download-form" action="/download" method="get"><input type="hidden" name="id" '
            'value="X"><input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" '
            'value="u&amp;1"></form>')
    url, params = find_confirm(page, "https://drive.usercontent.google.com/download?id=X", "X")
    assert url == "https://drive.usercontent.google.com/download"
    assert params == {"id": "X", "confirm": "t", "uuid": "u&1", "export": "download"}
    url, params = find_confirm("<html>warning</html>", "https://drive.google.com/uc?id=X", "X",
                               cookies={"download_warning_1_X": "tok"}, base_url="http://h/uc")
    assert (url, params) == ("http://h/uc", {"id": "X", "export": "download", "confirm": "tok"})
    assert find_confirm("<html><title>Quota exceeded</title></html>", "https://drive.google.com/uc", "X") is None


# --- checksums, records, destinations -----------------------------------------------------------

def test_record_file_content(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data)
    fetch(dest=dest, url=url, sha256=sha(data))
    record = json.loads((dest / RECORD_NAME).read_text())
    assert record["resource"] == "3cad-english" and record["source_kind"] == "url" and record["source"] == url
    assert record["filename"] == "3CAD.zip" and record["size"] == len(data) and record["sha256"] == sha(data)
    assert record["sha256_pinned"] is True and record["archive_format"] == "zip"
    assert record["time"].endswith("+00:00") and record["threecad_version"]


def test_wrong_digest_in_process(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data)
    with pytest.raises(ChecksumError) as err:
        fetch(dest=dest, url=url, sha256="0" * 64)
    assert err.value.actual == sha(data) and err.value.expected == "0" * 64
    assert not dest.exists()


def test_pinned_digest_differs_from_installed_tree(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data)
    fetch(dest=dest, url=url)
    with pytest.raises(UsageError, match="--force"):
        fetch(dest=dest, url=url, sha256="1" * 64)


def test_empty_dest_folder_is_used(server, dest):
    dest.mkdir(parents=True)
    fetch(dest=dest, url=server.add_file("3CAD.zip", zip_bytes(TREE)))
    assert_tree(dest)


def test_default_destinations(monkeypatch, tmp_path):
    monkeypatch.setenv("THREECAD_ROOT", str(tmp_path / "root" / "3CAD"))
    assert default_dest(resource_for("english")) == tmp_path / "root" / "3CAD"
    assert default_dest(resource_for(dtd=True)) == tmp_path / "root" / "dtd"


def test_stale_temporary_folders_are_removed(tmp_path, dest):
    dest.parent.mkdir(parents=True)
    stale = dest.parent / ".3CAD.extract-abc123"
    (stale / "half").mkdir(parents=True)
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes(TREE))
    fetch(dest=dest, archive=archive)
    assert not stale.exists() and not (dest / "half").exists()


# --- safe extraction ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_traversal_members_are_all_refused_and_nothing_written(tmp_path, dest, kind):
    absolute = str(tmp_path / "abs_evil.txt")
    good = {"3CAD/Aluminum_Ipad/train/good/000000.png": b"ok", "../evil.txt": b"x", absolute: b"x"}
    archive = tmp_path / f"evil.{kind}"
    if kind == "zip":
        archive.write_bytes(zip_bytes(good, symlinks={"3CAD/link": "../../outside"}))
    else:
        archive.write_bytes(tar_bytes(good, extra=[link_info("3CAD/link", "../../outside"),
                                                   link_info("3CAD/hard", "../../outside", tarfile.LNKTYPE)]))
    with pytest.raises(UnsafeArchiveError) as err:
        fetch(dest=dest, archive=archive)
    refused = {name for name, _ in err.value.members}
    assert {"../evil.txt", absolute, "3CAD/link"} <= refused
    if kind == "tar":
        assert "3CAD/hard" in refused
    assert not dest.exists() and not dest.parent.exists()
    assert not (tmp_path / "evil.txt").exists() and not Path(absolute).exists()
    assert not (tmp_path / "outside").exists()


def test_tar_special_members_refused(tmp_path):
    fifo = tarfile.TarInfo("d/fifo")
    fifo.type = tarfile.FIFOTYPE
    dev = tarfile.TarInfo("d/dev")
    dev.type = tarfile.CHRTYPE
    chain = [link_info("d/a", "."), link_info("d/b", "a/../..")]
    archive = tmp_path / "special.tar"
    archive.write_bytes(tar_bytes({"d/ok": b"ok", "d/b2/x": b"x"}, mode="w", extra=[fifo, dev, *chain,
                                                                                    link_info("d/b2", "ok")]))
    with pytest.raises(UnsafeArchiveError) as err:
        inspect_archive(archive)
    reasons = dict(err.value.members)
    assert "fifo" in reasons["d/fifo"] and "device" in reasons["d/dev"]
    assert "through another symbolic link" in reasons["d/b"]
    assert "d/b2" in reasons or "d/b2/x" in reasons


def test_safe_links_are_extracted(tmp_path):
    archive = tmp_path / "links.tar.bz2"
    archive.write_bytes(tar_bytes({"t/data/a.txt": b"hello"}, mode="w:bz2", extra=[
        link_info("t/alias.txt", "data/a.txt"), link_info("t/copy.txt", "t/data/a.txt", tarfile.LNKTYPE)]))
    out = tmp_path / "out"
    out.mkdir()
    extract_archive(archive, out)
    assert os.readlink(out / "t" / "alias.txt") == "data/a.txt"
    assert (out / "t" / "copy.txt").read_bytes() == b"hello" and not (out / "t" / "copy.txt").is_symlink()


def test_zip_bomb_cap(tmp_path):
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bytes({"zeros.bin": bytes(2_000_000)}))
    assert archive.stat().st_size < 20_000
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="limit"):
        extract_archive(archive, out, max_bytes=100_000)
    assert list(out.iterdir()) == []
    # the running count of written bytes stops a member that lies about its size, or the total
    with pytest.raises(ArchiveError, match="more data than its header"):
        _copy_limited(io.BytesIO(bytes(5000)), io.BytesIO(), _Budget(10**6, archive), Member("m", "file", 100))
    with pytest.raises(ArchiveError, match="limit"):
        _copy_limited(io.BytesIO(bytes(5000)), io.BytesIO(), _Budget(1000, archive), Member("m", "file", 5000))


@pytest.mark.parametrize("head,match", [(b"7z\xbc\xaf\x27\x1c rest", "7z"), (b"Rar!\x1a\x07\x00", "RAR"),
                                        (b"<!DOCTYPE html><html>", "web page"), (b"just text", "not a zip")])
def test_unsupported_files_get_clear_errors(tmp_path, dest, head, match):
    path = tmp_path / "thing"
    path.write_bytes(head)
    with pytest.raises(ArchiveError, match=match):
        fetch(dest=dest, archive=path)


# --- more failure modes ----------------------------------------------------------------------------

def test_stalled_server_times_out_instead_of_hanging(server, tmp_path):
    # the server waits 120 s before the body; the 0.5 s read time-out ends the attempt long before
    url = server.add_file("slow.zip", b"x" * 1000, stall=120.0)
    with pytest.raises(NetworkError, match="cannot download"):
        download_file(url, tmp_path / "slow.zip", retries=1, backoff=0, timeout=0.5)


def test_trickling_server_hits_the_stall_deadline(server, tmp_path):
    # one byte every 0.1 s never trips the 5 s read time-out; the 0.5 s stall deadline does
    url = server.add_file("trickle.zip", b"t" * 100_000, trickle=0.1)
    with pytest.raises(NetworkError, match="stalled"):
        download_file(url, tmp_path / "trickle.zip", retries=2, backoff=0, timeout=5, stall_timeout=0.5)
    assert len(server.requests_to("/files/")) == 2  # retried once, then gave up


def test_server_dropping_every_connection_gives_up_after_a_bounded_number_of_attempts(server, tmp_path):
    # every answer brings 70 kB of new bytes, then the connection drops: each attempt makes progress,
    # which used to reset the failure count for ever; now a transfer makes at most 4 x retries attempts
    from threecad.download.http import ATTEMPTS_PER_RETRY

    url = server.add_file("drip.zip", b"d" * 3_000_000, cut_after=70_000, cut_times=10**6)
    with pytest.raises(NetworkError, match="keeps breaking"):
        download_file(url, tmp_path / "drip.zip", retries=2, backoff=0, timeout=5)
    assert len(server.requests_to("/files/")) == 2 * ATTEMPTS_PER_RETRY
    assert part_path(tmp_path / "drip.zip").stat().st_size == 2 * ATTEMPTS_PER_RETRY * 70_000  # resumable


def test_progress_below_the_minimum_does_not_reset_the_failure_count(server, tmp_path):
    url = server.add_file("tiny.zip", b"s" * 3_000_000, cut_after=100, cut_times=10**6)
    with pytest.raises(NetworkError, match="gave up after 3 attempts"):
        download_file(url, tmp_path / "tiny.zip", retries=3, backoff=0, timeout=5)


def test_content_length_larger_than_free_disk_is_refused_before_writing(server, tmp_path, monkeypatch):
    import threecad.download.http as http

    monkeypatch.setattr(http, "free_bytes", lambda folder: 10_000)
    url = server.add_file("big.zip", b"b" * 200_000)
    with pytest.raises(DownloadError, match="only 9.8 KiB is free") as info:
        download_file(url, tmp_path / "big.zip", retries=3, backoff=0, timeout=5)
    assert not isinstance(info.value, NetworkError)  # not retried
    assert len(server.requests_to("/files/")) == 1
    part = part_path(tmp_path / "big.zip")
    assert not part.exists() or part.stat().st_size == 0


@pytest.mark.parametrize("url", ["http://[::1/3CAD.zip", "http://host:99999/a.zip", "http://host:port/a.zip",
                                 "http:///a.zip", "file:///etc/passwd", "http://exa mple.org/a.zip", ""])
def test_malformed_url_is_a_usage_error_in_the_library_and_the_cli(url, dest):
    with pytest.raises(UsageError, match="--url"):
        fetch(dest=dest, url=url or "::")
    proc = cli("--url", url, "--dest", dest, rc=2)
    assert "argument --url" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cut_and_range_ignored_gives_up(server, tmp_path):
    # each attempt restarts from 0 and is cut at the same place: no progress, so retries run out
    url = server.add_file("a.zip", b"y" * 100_000, cut_after=10_000, cut_times=99, ignore_range=True)
    with pytest.raises(NetworkError, match="gave up after 3 attempts"):
        download_file(url, tmp_path / "a.zip", retries=3, backoff=0, timeout=5)
    assert len(server.requests_to("/files/")) == 3


def test_progress_bar_on_stderr(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THREECAD_PROGRESS", "bars")  # as on a terminal
    url = server.add_file("a.zip", zip_bytes(TREE))
    download_file(url, tmp_path / "a.zip", retries=1, backoff=0, progress=True)
    err = capsys.readouterr().err
    assert "a.zip" in err and "B/s" in err


def test_progress_lines_without_a_terminal(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THREECAD_PROGRESS", "log")
    monkeypatch.setenv("THREECAD_PROGRESS_INTERVAL", "0")
    url = server.add_file("a.zip", b"z" * 300_000, trickle=0, cut_after=None)
    download_file(url, tmp_path / "a.zip", retries=1, backoff=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("threecad: a.zip: ") for line in lines), lines
    assert "\r" not in "".join(lines) and any("B/s" in line for line in lines)


def test_corrupt_download_is_set_aside(server, dest):
    data = zip_bytes(TREE)
    url = server.add_file("3CAD.zip", data[: len(data) // 2])  # a server that sent half, with a short length
    with pytest.raises(ArchiveError, match="kept aside"):
        fetch(dest=dest, url=url)
    assert not dest.exists()
    assert [p.name for p in download_dir(dest).iterdir() if ".bad-" in p.name]
    assert not (download_dir(dest) / "3CAD.zip").exists()  # the next run downloads again


def test_drive_filename_is_recorded(server, dest):
    data = zip_bytes(TREE)
    server.add_drive(ENGLISH_ID, data, style="direct",
                     headers={"Content-Disposition": "attachment; filename=\"3CAD.zip\"; filename*=UTF-8''3CAD.zip"})
    out = fetch(dest=dest, drive_url=server.drive_url)
    assert out.record.filename == "3CAD.zip" and out.record.source_kind == "drive"


def test_symlinked_dest_is_installed_through(tmp_path):
    real = tmp_path / "big_disk" / "3CAD"
    real.mkdir(parents=True)
    link = tmp_path / "3CAD"
    link.symlink_to(real)
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes(TREE))
    out = fetch(dest=link, archive=archive)
    assert out.dest == real.resolve() and link.is_symlink()
    assert_tree(link)


def test_failed_download_leaves_no_trace(dest):
    with pytest.raises(NetworkError):
        fetch(dest=dest, url=f"http://127.0.0.1:{closed_port()}/3CAD.zip", retries=1, timeout=1)
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_zip_names_in_gbk_are_decoded(tmp_path, dest):
    # Windows tools in China write GBK names without the zip UTF-8 flag
    gbk = "缺陷".encode("gbk")
    data = zip_bytes({"3CAD/ABCD/x.txt": b"x"}).replace(b"ABCD", gbk)
    archive = tmp_path / "gbk.zip"
    archive.write_bytes(data)
    fetch(dest=dest, archive=archive)
    assert (dest / "缺陷" / "x.txt").read_bytes() == b"x"


def test_single_category_archive_is_not_unwrapped(tmp_path):
    from threecad.download.install import unwrap_single_folder

    (tmp_path / "a" / "Copper_Stator" / "train").mkdir(parents=True)
    assert unwrap_single_folder(tmp_path / "a") == tmp_path / "a"
    (tmp_path / "b" / "3CAD" / "Copper_Stator").mkdir(parents=True)
    assert unwrap_single_folder(tmp_path / "b") == tmp_path / "b" / "3CAD"
