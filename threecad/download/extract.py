"""Safe extraction of zip and tar (.gz/.bz2/.xz) archives.

Every member is checked before anything is written; when one is bad, all bad members are
listed in one :class:`~threecad.download.errors.UnsafeArchiveError`. Refused: absolute paths
(also ``C:``-style), ``..`` components, symbolic links whose target leaves the destination or
passes through another link, hard links to anything but an earlier regular file of the archive,
members that lie inside a file or link member, a name that appears twice (the last copy
would silently win), device files, fifos, sockets, encrypted zip members and unsupported zip
compression methods. The total uncompressed size is capped up front (from the headers: the
total, optionally the expansion ratio against the archive's size, and the free space of the
destination) and again while writing (counting the bytes actually written, per member against
its declared size and in total), so a zip bomb is refused before anything is written. Files are
written by this module (never ``extractall``); symbolic links are created last, so nothing is
ever written through one; hard links become copies.
``__MACOSX/`` resource-fork folders are skipped.
"""

from __future__ import annotations

import errno
import logging
import lzma
import os
import shutil
import stat
import struct
import sys
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import ArchiveError, DownloadError, UnsafeArchiveError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Member",
    "ArchivePlan",
    "detect_format",
    "open_archive",
    "inspect_archive",
    "extract_archive",
    "human_size",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 1024**3
CHUNK_SIZE = 1 << 20
SKIPPED_TOP = frozenset({"__MACOSX"})
MAX_LISTED = 50
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {9: "Deflate64", 12: "bzip2", 14: "LZMA", 93: "Zstandard", 95: "xz", 98: "PPMd", 99: "AES"}
# what a damaged or hostile archive makes zipfile/tarfile raise (ValueError: negative seeks, bad
# numbers in headers; struct.error: short headers; OverflowError: huge offsets)
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, NotImplementedError,
            ValueError, struct.error, OverflowError)


@dataclass(frozen=True)
class Member:
    """One member that will be extracted.

    Attributes
    ----------
    name : str
        Normalised relative POSIX path.
    kind : str
        ``file``, ``dir``, ``symlink`` or ``hardlink``.
    size : int
        Bytes it will write (for a hard link: its target's size).
    link : str
        Symlink target as stored, or the normalised archive path a hard link points to.
    """

    name: str
    kind: str
    size: int = 0
    link: str = ""
    ref: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ArchivePlan:
    """The checked content of an archive: what extraction will write."""

    path: Path
    format: str
    members: tuple[Member, ...]
    total_size: int

    @property
    def top_level(self) -> list[str]:
        """Names of the top-level entries, sorted."""
        return sorted({m.name.split("/", 1)[0] for m in self.members})


def human_size(n: float) -> str:
    """``n`` bytes in binary units (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def detect_format(path: str | Path) -> str:
    """``zip``, ``tar``, ``tar.gz``, ``tar.bz2`` or ``tar.xz``, from the file's first bytes.

    Raises
    ------
    ArchiveError
        Another format (7z, rar, an HTML page, ...), with what to do about it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    other = None
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        other = "a 7z archive"
    elif head[:4] == b"Rar!":
        other = "a RAR archive"
    if other:
        raise ArchiveError(f"{path} is {other}, which threecad cannot extract. Extract it yourself (for example "
                           f"with 7z x) and point threecad at the folder (--data-root or $THREECAD_ROOT).")
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        raise ArchiveError(f"{path} is a web page, not an archive (a download link that needs a browser?). "
                           f"Download the archive in a browser and import it with --archive FILE.")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise ArchiveError(f"{path} is not a zip or tar archive (.zip, .tar, .tar.gz, .tar.bz2, .tar.xz); "
                       f"check that the download is complete and is the right file.")


class _Reader:
    """Common interface of the zip and tar readers."""

    format = ""

    def entries(self) -> Iterator[tuple[str, str, int, str, str, Any]]:
        """``(raw_name, kind, size, link, problem, ref)`` per member (``problem`` empty when fine)."""
        raise NotImplementedError

    def open(self, ref: Any) -> IO[bytes]:
        """A binary stream of a file member."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the archive."""
        raise NotImplementedError


class _ZipReader(_Reader):
    format = "zip"

    def __init__(self, path: Path) -> None:
        self.zf = zipfile.ZipFile(path)

    @staticmethod
    def _name(info: zipfile.ZipInfo) -> str:
        """The member name; names without the UTF-8 flag (decoded as cp437) are retried as UTF-8, then GBK."""
        name = info.filename
        if info.flag_bits & 0x800 or name.isascii():
            return name
        raw = name.encode("cp437", errors="replace")
        for encoding in ("utf-8", "gbk"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        return name

    def entries(self) -> Iterator[tuple[str, str, int, str, str, Any]]:
        for info in self.zf.infolist():
            name = self._name(info)
            mode = (info.external_attr >> 16) if info.create_system == 3 else 0
            ftype = stat.S_IFMT(mode)
            if info.flag_bits & 0x1:
                yield name, "file", info.file_size, "", "encrypted member (not supported)", info
            elif info.is_dir():
                yield name, "dir", 0, "", "", info
            elif ftype == stat.S_IFLNK:
                if info.file_size > 4096:
                    yield name, "symlink", 0, "", "symbolic link with an overlong target", info
                else:
                    target = self.zf.read(info).decode("utf-8", "surrogateescape")
                    yield name, "symlink", 0, target, "", info
            elif ftype in (stat.S_IFCHR, stat.S_IFBLK):
                yield name, "file", 0, "", "device file", info
            elif ftype == stat.S_IFIFO:
                yield name, "file", 0, "", "fifo (named pipe)", info
            elif ftype == stat.S_IFSOCK:
                yield name, "file", 0, "", "socket", info
            elif info.compress_type not in _ZIP_METHODS:
                method = _ZIP_METHOD_NAMES.get(info.compress_type, str(info.compress_type))
                yield (name, "file", info.file_size, "",
                       f"compression method {method} is not supported by Python's zipfile", info)
            else:
                yield name, "file", info.file_size, "", "", info

    def open(self, ref: Any) -> IO[bytes]:
        return self.zf.open(ref)

    def close(self) -> None:
        self.zf.close()


class _TarReader(_Reader):
    def __init__(self, path: Path, fmt: str) -> None:
        self.format = fmt
        self.tf = tarfile.open(path, mode="r:*")

    def entries(self) -> Iterator[tuple[str, str, int, str, str, Any]]:
        for ti in self.tf.getmembers():
            if ti.isreg():
                yield ti.name, "file", ti.size, "", "", ti
            elif ti.isdir():
                yield ti.name, "dir", 0, "", "", ti
            elif ti.issym():
                yield ti.name, "symlink", 0, ti.linkname, "", ti
            elif ti.islnk():
                yield ti.name, "hardlink", 0, ti.linkname, "", ti
            elif ti.ischr() or ti.isblk():
                yield ti.name, "file", 0, "", "device file", ti
            elif ti.isfifo():
                yield ti.name, "file", 0, "", "fifo (named pipe)", ti
            else:
                yield ti.name, "file", 0, "", f"unsupported member type {ti.type!r}", ti

    def open(self, ref: Any) -> IO[bytes]:
        stream = self.tf.extractfile(ref)
        if stream is None:  # pragma: no cover - only regular files are opened
            raise ArchiveError(f"cannot read member {ref.name}")
        return stream

    def close(self) -> None:
        self.tf.close()


def _normalize(raw: str) -> tuple[str, str]:
    """``(relative posix path, problem)``; ``problem`` is empty when the name is safe."""
    if "\x00" in raw:
        return "", "NUL character in the name"
    text = raw.replace("\\", "/")
    if text.startswith("/") or (len(text) >= 2 and text[1] == ":" and text[0].isalpha()):
        return "", "absolute path"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", "'..' in the path (escapes the destination)"
    return "/".join(parts), ""


def _symlink_problem(name: str, target: str, symlinks: set[str]) -> str:
    """Why the symbolic link ``name -> target`` is unsafe, or ``''``."""
    text = target.replace("\\", "/")
    if not text:
        return "symbolic link with an empty target"
    if text.startswith("/") or (len(text) >= 2 and text[1] == ":" and text[0].isalpha()):
        return f"symbolic link to an absolute path ({target})"
    stack = name.split("/")[:-1]
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return f"symbolic link pointing outside the destination ({target})"
            stack.pop()
        else:
            stack.append(part)
            if "/".join(stack) in symlinks:
                return f"symbolic link through another symbolic link ({target})"
    return ""


class Archive:
    """An open archive: :meth:`inspect` checks it, :meth:`extract` writes it (see the module doc)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fmt = detect_format(self.path)
        try:
            self._reader: _Reader = _ZipReader(self.path) if fmt == "zip" else _TarReader(self.path, fmt)
        except _CORRUPT + (OSError,) as exc:
            raise ArchiveError(f"{self.path} is not a readable {fmt} archive ({_first_line(exc)}); it is "
                               f"probably incomplete or damaged: delete it and download it again.") from None
        self.format = fmt

    def close(self) -> None:
        """Release the archive file."""
        self._reader.close()

    def inspect(self, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float | None = None,
                ratio_floor: int = 0, max_members: int | None = None) -> ArchivePlan:
        """Check every member; return what extraction will write.

        Parameters
        ----------
        max_bytes : int
            Most bytes the members may declare in total.
        max_ratio : float, optional
            Most bytes declared per byte of the archive file (a zip bomb's expansion),
            enforced only when the total exceeds ``ratio_floor`` bytes.
        ratio_floor : int
            Totals up to this many bytes are not checked against ``max_ratio``.
        max_members : int, optional
            Most members.

        Raises
        ------
        UnsafeArchiveError
            Listing every bad member.
        ArchiveError
            The archive is corrupt, or exceeds one of the limits.
        """
        problems: list[tuple[str, str]] = []
        members: list[Member] = []
        try:
            for raw, kind, size, link, problem, ref in self._reader.entries():
                name, bad = _normalize(raw)
                if bad or problem:
                    problems.append((raw, bad or problem))
                elif name and name.split("/", 1)[0] not in SKIPPED_TOP:
                    members.append(Member(name, kind, size, link, ref))
        except _CORRUPT + (OSError,) as exc:
            raise ArchiveError(f"{self.path} is damaged ({_first_line(exc)}): delete it and download it "
                               f"again.") from None
        members, more = _check_links_and_conflicts(members)
        problems += more
        if problems:
            shown = "\n".join(f"  {n}: {why}" for n, why in problems[:MAX_LISTED])
            rest = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
            raise UnsafeArchiveError(
                f"refusing to extract {self.path}: {len(problems)} member(s) cannot be extracted safely; "
                f"nothing was written. The archive is damaged or malicious: get it again from the "
                f"official source.\n{shown}{rest}", problems)
        total = sum(m.size for m in members)
        self._check_limits(total, len(members), max_bytes, max_ratio, ratio_floor, max_members)
        return ArchivePlan(self.path, self.format, tuple(members), total)

    def _check_limits(self, total: int, n_members: int, max_bytes: int, max_ratio: float | None,
                      ratio_floor: int, max_members: int | None) -> None:
        """Refuse, from the declared sizes, an archive that would write too much."""
        if total > max_bytes:
            raise ArchiveError(f"refusing to extract {self.path}: it would write {human_size(total)}, more than "
                               f"the limit of {human_size(max_bytes)} (a zip bomb?). Nothing was written.")
        if max_members is not None and n_members > max_members:
            raise ArchiveError(f"refusing to extract {self.path}: {n_members:,} members, more than the limit of "
                               f"{max_members:,}. Nothing was written.")
        if max_ratio is not None and total > ratio_floor:
            size = max(self.path.stat().st_size, 1)
            if total > max_ratio * size:
                raise ArchiveError(f"refusing to extract {self.path}: {human_size(size)} that would expand to "
                                   f"{human_size(total)} ({total / size:,.0f} times its size, more than the limit "
                                   f"of {max_ratio:g}; a zip bomb?). Nothing was written.")

    def extract(self, plan: ArchivePlan, dest_dir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                progress: bool = False) -> None:
        """Write ``plan`` (from :meth:`inspect` on this archive) into the existing folder ``dest_dir``.

        Raises
        ------
        ArchiveError
            The archive turned out corrupt or wrote more than ``max_bytes``.
        DownloadError
            Writing failed (disk full, permissions).
        """
        from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

        root = Path(dest_dir)
        real_root = os.path.realpath(root)
        _check_free_space(self.path, root, plan.total_size)
        budget = _Budget(max_bytes, self.path)
        links: list[tuple[Member, Path]] = []
        with tqdm(total=plan.total_size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                  desc=f"extract {self.path.name}", disable=not progress, leave=False) as bar:
            try:
                for m in plan.members:
                    out = root.joinpath(*m.name.split("/"))
                    if m.kind == "dir":
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    if m.kind == "symlink":
                        links.append((m, out))
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    _ensure_inside(out, real_root, m.name)
                    with (self._reader.open(m.ref) if m.kind == "file"
                          else open(root.joinpath(*m.link.split("/")), "rb")) as src, open(out, "wb") as dst:
                        _copy_limited(src, dst, budget, m, bar)
                for m, out in links:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    _ensure_inside(out, real_root, m.name)
                    if os.path.lexists(out):
                        out.unlink()
                    os.symlink(m.link, out)
                    if os.path.commonpath([os.path.realpath(out), real_root]) != real_root:
                        out.unlink()
                        raise UnsafeArchiveError(f"refusing {self.path}: {m.name} links outside the destination",
                                                 [(m.name, "symbolic link pointing outside the destination")])
            except _CORRUPT as exc:
                raise ArchiveError(f"{self.path} is damaged ({_first_line(exc)}): delete it and download it "
                                   f"again.") from None
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DownloadError(f"no space left while extracting {self.path} into {root} "
                                       f"(it needs {human_size(plan.total_size)}); free some space or choose "
                                       f"another --dest.") from None
                raise DownloadError(f"cannot extract {self.path} into {root}: {exc}") from None


def _check_free_space(path: Path, dest: Path, needed: int) -> None:
    """Refuse to start an extraction that cannot fit on the destination's file system."""
    try:
        free = shutil.disk_usage(dest).free
    except OSError:
        return
    if needed > free:
        raise ArchiveError(f"refusing to extract {path}: it extracts to {human_size(needed)} but only "
                           f"{human_size(free)} is free in {dest}. Nothing was written.")


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, tarfile.ReadError) and "could not be opened" in str(exc):
        return "no tar archive inside"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


class _Budget:
    """Counts bytes written against the cap."""

    def __init__(self, limit: int, path: Path) -> None:
        self.limit = limit
        self.used = 0
        self.path = path

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise ArchiveError(f"refusing to extract {self.path}: it wrote more than the limit of "
                               f"{human_size(self.limit)} (a zip bomb?).")


def _copy_limited(src: IO[bytes], dst: IO[bytes], budget: _Budget, member: Member, bar: Any = None) -> int:
    """Copy ``src`` to ``dst``, counting bytes against ``budget`` and the member's declared size."""
    written = 0
    while chunk := src.read(CHUNK_SIZE):
        written += len(chunk)
        if written > member.size:
            raise ArchiveError(f"member {member.name} of {budget.path} holds more data than its header "
                               f"says ({member.size} bytes); the archive is damaged or malicious.")
        budget.take(len(chunk))
        dst.write(chunk)
        if bar is not None:
            bar.update(len(chunk))
    return written


def _ensure_inside(path: Path, real_root: str, name: str) -> None:
    real_parent = os.path.realpath(path.parent)
    if os.path.commonpath([real_parent, real_root]) != real_root:
        raise UnsafeArchiveError(f"refusing to write {name}: its folder resolves outside the destination",
                                 [(name, "path resolves outside the destination")])


def _check_links_and_conflicts(members: list[Member]) -> tuple[list[Member], list[tuple[str, str]]]:
    """Check links, type conflicts and members inside non-folders; fill hard-link sizes."""
    problems: list[tuple[str, str]] = []
    kinds: dict[str, set[str]] = {}
    for m in members:
        kinds.setdefault(m.name, set()).add("dir" if m.kind == "dir" else "link" if m.kind == "symlink" else "file")
    symlinks = {name for name, k in kinds.items() if "link" in k}
    counts: dict[str, int] = {}
    for m in members:
        if m.kind != "dir":
            counts[m.name] = counts.get(m.name, 0) + 1
    for name, k in kinds.items():
        if len(k) > 1:
            problems.append((name, f"appears more than once with different types ({', '.join(sorted(k))})"))
        elif counts.get(name, 0) > 1:
            problems.append((name, f"appears {counts[name]} times in the archive (only one copy would be kept)"))
    out: list[Member] = []
    file_sizes: dict[str, int] = {}
    for m in members:
        parts = m.name.split("/")
        blocked = next((("/".join(parts[:i]), kinds["/".join(parts[:i])]) for i in range(1, len(parts))
                        if kinds.get("/".join(parts[:i]), {"dir"}) - {"dir"}), None)
        if blocked:
            problems.append((m.name, f"lies inside {blocked[0]}, which is not a folder"))
            continue
        if m.kind == "symlink":
            why = _symlink_problem(m.name, m.link, symlinks)
            if why:
                problems.append((m.name, why))
                continue
        elif m.kind == "hardlink":
            target, bad = _normalize(m.link)
            if bad:
                problems.append((m.name, f"hard link to {m.link!r}: {bad}"))
                continue
            if target not in file_sizes:
                problems.append((m.name, f"hard link to {m.link!r}, which is not a regular file earlier "
                                         f"in the archive"))
                continue
            m = Member(m.name, "hardlink", file_sizes[target], target, m.ref)
            file_sizes[m.name] = m.size
        elif m.kind == "file":
            file_sizes[m.name] = m.size
        out.append(m)
    return out, problems


@contextmanager
def open_archive(path: str | Path) -> Iterator[Archive]:
    """Open ``path`` as an :class:`Archive` for the duration of the block."""
    archive = Archive(path)
    try:
        yield archive
    finally:
        archive.close()


def inspect_archive(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float | None = None,
                    ratio_floor: int = 0, max_members: int | None = None) -> ArchivePlan:
    """Check the archive at ``path`` without writing anything (see :meth:`Archive.inspect`)."""
    with open_archive(path) as archive:
        return archive.inspect(max_bytes=max_bytes, max_ratio=max_ratio, ratio_floor=ratio_floor,
                               max_members=max_members)


def extract_archive(path: str | Path, dest_dir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                    progress: bool = False) -> ArchivePlan:
    """Check, then extract the archive at ``path`` into the existing folder ``dest_dir``.

    Nothing is written when a member is refused. Returns the plan that was extracted.
    """
    with open_archive(path) as archive:
        plan = archive.inspect(max_bytes=max_bytes)
        archive.extract(plan, dest_dir, max_bytes=max_bytes, progress=progress)
        return plan
