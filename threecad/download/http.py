"""HTTP(S) transfers with resume, retries, time-outs and a progress bar.

:func:`download_file` writes into ``<target>.part`` and renames it onto ``<target>`` only when
every byte has arrived. An interrupted transfer resumes with an HTTP ``Range`` request;
servers that ignore ``Range`` (answer 200) make it start again from byte 0, and a 416 answer
for a ``.part`` file that is already complete finishes the transfer. Connection errors,
time-outs, stalls, 5xx and 429 answers are retried with exponential back-off; any other HTTP
error stops at once with a message naming the URL.

Every wait is bounded: ``retries`` failures in a row end the transfer, an attempt that brought
at least :data:`MIN_PROGRESS_BYTES` new bytes starts the count again, but a transfer never
makes more than ``ATTEMPTS_PER_RETRY * retries`` attempts in all (a server that drops every
connection after a few bytes cannot keep it going forever); an attempt that receives less than
:data:`STALL_MIN_BYTES` in ``stall_timeout`` seconds (a trickling server) is abandoned and
retried; an answer whose ``Content-Length`` exceeds the free space of the target's folder is
refused before any byte is written.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from .. import __version__
from .errors import DownloadError, HTTPStatusError, NetworkError

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_BACKOFF",
    "MAX_BACKOFF",
    "ATTEMPTS_PER_RETRY",
    "MIN_PROGRESS_BYTES",
    "STALL_MIN_BYTES",
    "STALL_FACTOR",
    "HtmlHandler",
    "Transfer",
    "make_session",
    "part_path",
    "download_file",
    "content_disposition_name",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 16
DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 30.0
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 60.0
ATTEMPTS_PER_RETRY = 4  # a transfer makes at most this many times ``retries`` attempts in all
MIN_PROGRESS_BYTES = CHUNK_SIZE  # an attempt that brought this many new bytes resets the failure count
STALL_MIN_BYTES = 1024  # fewer bytes than this in ``stall_timeout`` seconds: the attempt has stalled
STALL_FACTOR = 4.0  # default stall_timeout = STALL_FACTOR * timeout
HTML_READ_LIMIT = 2 << 20  # bytes of an HTML answer read for the html handler
MAX_HTML_HOPS = 5

#: Called with an HTML answer and (up to ``HTML_READ_LIMIT`` bytes of) its body. Returns the
#: ``(url, params)`` to request next, or raises a ``DownloadError`` explaining the page.
HtmlHandler = Callable[[requests.Response, bytes], "tuple[str, Mapping[str, str] | None]"]


@dataclass(frozen=True)
class Transfer:
    """What :func:`download_file` fetched.

    Attributes
    ----------
    path : Path
        The complete file.
    url : str
        The URL the bytes finally came from (after redirects and confirm pages).
    size : int
        File size in bytes.
    resumed_from : int
        Bytes already in the ``.part`` file when the transfer that completed it started.
    requests : int
        HTTP requests made.
    remote_name : str or None
        The file name the server gave (``Content-Disposition``), if any.
    """

    path: Path
    url: str
    size: int
    resumed_from: int
    requests: int
    remote_name: str | None = None


class _Transient(Exception):
    """A failure worth retrying; ``progressed`` when bytes arrived before it."""

    def __init__(self, reason: str, *, progressed: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.progressed = progressed
        self.retry_after = retry_after


@dataclass
class _Follow:
    url: str
    params: Mapping[str, str] | None


class _Restart(Exception):
    """The ``.part`` file cannot be resumed: start again from byte 0."""


def make_session() -> requests.Session:
    """A ``requests`` session with threecad's User-Agent (proxies come from the environment)."""
    session = requests.Session()
    session.headers["User-Agent"] = f"threecad/{__version__} (+python-requests/{requests.__version__})"
    return session


def part_path(target: str | Path) -> Path:
    """Where the incomplete transfer of ``target`` is kept: ``<target>.part``."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def download_file(
    url: str,
    target: str | Path,
    *,
    params: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    backoff: float = DEFAULT_BACKOFF,
    progress: bool = False,
    html_handler: HtmlHandler | None = None,
    error_hint: str = "",
    stall_timeout: float | None = None,
) -> Transfer:
    """Download ``url`` to ``target``, resuming ``<target>.part`` when present.

    Parameters
    ----------
    url, params
        What to request (``params`` are added to the query string).
    target
        Final path; its folder is created.
    session
        Session to use (cookies persist across the requests); a new one by default.
    retries
        Attempts in a row that may fail transiently before giving up (at least 1). An attempt
        that received at least :data:`MIN_PROGRESS_BYTES` new bytes before failing starts the
        count again; at most ``ATTEMPTS_PER_RETRY * retries`` attempts are made in all.
    timeout
        Seconds allowed to connect and between two reads.
    stall_timeout
        An attempt receiving fewer than :data:`STALL_MIN_BYTES` bytes in this many seconds is
        abandoned (and retried); default ``STALL_FACTOR * timeout``.
    backoff
        First retry delay in seconds; doubled at every failure, at most ``MAX_BACKOFF``.
        A ``Retry-After`` header wins when present.
    progress
        Report progress on stderr (:func:`threecad.progress.progress`: a bar on a terminal,
        log lines otherwise).
    html_handler
        Called when the server answers an HTML page (such as Google Drive's confirm page);
        without one, an HTML answer is an error because an archive is expected.
    error_hint
        Appended to messages of errors that retrying cannot fix.

    Returns
    -------
    Transfer

    Raises
    ------
    NetworkError
        The server stayed unreachable, or transfers kept failing, for ``retries`` attempts.
    HTTPStatusError
        The server refused the request (4xx other than 416/429).
    DownloadError
        Any other failure (an HTML page instead of a file, a malformed URL, a file larger
        than the free disk space, ...).
    """
    if retries < 1:
        raise ValueError("retries must be at least 1")
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    stall = STALL_FACTOR * timeout if stall_timeout is None else stall_timeout
    if not stall > 0:
        raise ValueError("stall_timeout must be positive")
    max_attempts = ATTEMPTS_PER_RETRY * retries
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    own_session = session is None
    sess = session or make_session()
    failures = 0
    attempts = 0
    restarts = 0
    hops = 0
    n_requests = 0
    best = part.stat().st_size if part.exists() else 0  # progress = the .part file grew past this
    current_url, current_params = url, params
    try:
        while True:
            have = part.stat().st_size if part.exists() else 0
            n_requests += 1
            try:
                result = _attempt(sess, current_url, current_params, part, have, timeout=timeout,
                                  stall_timeout=stall, progress=progress, html_handler=html_handler,
                                  error_hint=error_hint, display_name=target.name)
            except _Transient as exc:
                attempts += 1
                size = part.stat().st_size if part.exists() else 0
                if exc.progressed and size >= best + MIN_PROGRESS_BYTES:  # new bytes, not the same again
                    failures = 0
                best = max(best, size)
                failures += 1
                if failures >= retries:
                    raise NetworkError(_give_up_message(current_url, failures, str(exc), part, error_hint)) from None
                if attempts >= max_attempts:
                    raise NetworkError(_give_up_message(
                        current_url, attempts, f"{exc}; the transfer keeps breaking", part, error_hint)) from None
                delay = exc.retry_after if exc.retry_after is not None else backoff * 2 ** (failures - 1)
                delay = max(0.0, min(delay, MAX_BACKOFF))
                log.warning("%s: %s; retrying in %.1f s (attempt %d of %d in a row, %d of %d in all)",
                            _host(current_url), exc, delay, failures + 1, retries, attempts + 1, max_attempts)
                time.sleep(delay)
                continue
            except _Restart:
                restarts += 1
                if restarts > 3:
                    raise DownloadError(f"{current_url}: the server keeps answering with inconsistent "
                                        f"byte ranges; delete {part} and try again later.{_hint(error_hint)}")
                part.unlink(missing_ok=True)
                continue
            if isinstance(result, _Follow):
                hops += 1
                if hops > MAX_HTML_HOPS:
                    raise DownloadError(f"{current_url} kept answering with web pages instead of the "
                                        f"file.{_hint(error_hint)}")
                current_url, current_params = result.url, result.params
                continue
            final_url, resumed_from, remote_name = result
            os.replace(part, target)
            size = target.stat().st_size
            log.info("downloaded %s (%d bytes) from %s", target, size, final_url)
            return Transfer(target, final_url, size, resumed_from, n_requests, remote_name)
    finally:
        if own_session:
            sess.close()


def _attempt(sess: requests.Session, url: str, params: Mapping[str, str] | None, part: Path, have: int, *,
             timeout: float, stall_timeout: float, progress: bool, html_handler: HtmlHandler | None,
             error_hint: str, display_name: str) -> "_Follow | tuple[str, int, str | None]":
    """One request. Returns ``_Follow``, or ``(final_url, resumed_from, remote_name)`` once ``part`` is complete."""
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = sess.get(url, params=params, headers=headers, stream=True, timeout=(timeout, timeout))
    except requests.Timeout:
        raise _Transient(f"no answer within {timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise _Transient(f"cannot connect ({_reason(exc)})") from None
    except requests.RequestException as exc:
        raise DownloadError(f"cannot request {url}: {_reason(exc)}.{_hint(error_hint)}") from None
    with resp:
        status = resp.status_code
        if status == 429 or status == 408 or status >= 500:
            reason = f" {resp.reason}" if resp.reason else ""
            raise _Transient(f"HTTP {status}{reason}", retry_after=_retry_after(resp))
        if _is_html(resp):
            if html_handler is None:
                raise DownloadError(f"{resp.url} answered a web page (HTTP {status}), not an archive. "
                                    f"Check the URL.{_hint(error_hint)}")
            body = _read_limited(resp, HTML_READ_LIMIT)
            next_url, next_params = html_handler(resp, body)
            return _Follow(next_url, next_params)
        if status == 416:
            total = _range_total(resp.headers.get("Content-Range"))
            if have and total == have:
                log.info("%s is already complete", part)
                return resp.url, have, None
            if have:
                log.warning("%s: cannot resume %s (%d bytes, server has %s); starting again",
                            _host(url), part.name, have, total if total is not None else "?")
                raise _Restart
            raise HTTPStatusError(f"HTTP 416 from {resp.url}.{_hint(error_hint)}", status)
        if status >= 400:
            reason = f" {resp.reason}" if resp.reason else ""
            raise HTTPStatusError(f"HTTP {status}{reason} from {resp.url}.{_hint(error_hint)}", status)
        if status == 206:
            start, total = _range_start_total(resp.headers.get("Content-Range"))
            if start != have:
                log.warning("%s: asked to resume at byte %d, got byte %s; starting again",
                            _host(url), have, start)
                raise _Restart
            mode = "ab"
            if total is None:
                length = _content_length(resp)
                total = have + length if length is not None else None
        elif status == 200:
            if have:
                log.warning("%s ignored the resume request; downloading %s again from the start",
                            _host(url), display_name)
            have = 0
            mode = "wb"
            total = _content_length(resp)
        else:
            raise DownloadError(f"unexpected answer HTTP {status} from {resp.url}.{_hint(error_hint)}")
        if total is not None:
            _check_free_space(part, total - have, resp.url, error_hint)
        received = _stream(resp, part, mode, have, total, stall_timeout=stall_timeout, progress=progress,
                           display_name=display_name)
        if total is not None and have + received < total:
            raise _Transient(f"connection closed after {have + received} of {total} bytes",
                             progressed=received > 0)
        return resp.url, have, content_disposition_name(resp.headers.get("Content-Disposition"))


def free_bytes(folder: Path) -> int:
    """Free space, in bytes, of the file system holding ``folder``."""
    return shutil.disk_usage(folder).free


def _check_free_space(part: Path, needed: int, url: str, error_hint: str) -> None:
    """Refuse (before writing) a body larger than the free space beside ``part``."""
    from .extract import human_size

    try:
        free = free_bytes(part.parent)
    except OSError:
        return
    if needed > free:
        raise DownloadError(f"{url} is {human_size(needed)} but only {human_size(free)} is free in {part.parent}; "
                            f"free some space or choose another --dest.{_hint(error_hint)}")


def _stream(resp: requests.Response, part: Path, mode: str, have: int, total: int | None, *,
            stall_timeout: float, progress: bool, display_name: str) -> int:
    """Append the body to ``part``; the number of bytes received (written before any error).

    Raises ``_Transient`` when the connection breaks, or when fewer than
    :data:`STALL_MIN_BYTES` bytes arrived in ``stall_timeout`` seconds (a trickle).
    """
    from ..progress import progress as progress_bar

    received = 0
    window_start, window_bytes = time.monotonic(), 0
    bar = progress_bar(total, display_name, unit="B", unit_scale=True, unit_divisor=1024, initial=have,
                       enabled=progress)
    try:
        with open(part, mode) as fh:
            while True:
                try:
                    chunk = resp.raw.read1(CHUNK_SIZE, decode_content=False)
                except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                    fh.flush()
                    raise _Transient(f"transfer interrupted after {have + received} bytes ({_reason(exc)})",
                                     progressed=received > 0) from None
                if not chunk:
                    break
                fh.write(chunk)
                received += len(chunk)
                window_bytes += len(chunk)
                bar.update(len(chunk))
                now = time.monotonic()
                if now - window_start >= stall_timeout:
                    if window_bytes < STALL_MIN_BYTES:
                        fh.flush()
                        raise _Transient(f"the transfer stalled after {have + received} bytes (less than "
                                         f"{STALL_MIN_BYTES} bytes in {stall_timeout:g} s)", progressed=received > 0)
                    window_start, window_bytes = now, 0
    finally:
        bar.close()
    return received


def _is_html(resp: requests.Response) -> bool:
    return resp.headers.get("Content-Type", "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")


def _read_limited(resp: requests.Response, limit: int) -> bytes:
    out = bytearray()
    try:
        for chunk in resp.raw.stream(CHUNK_SIZE, decode_content=True):
            out += chunk
            if len(out) >= limit:
                break
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise _Transient(f"page interrupted ({_reason(exc)})") from None
    return bytes(out[:limit])


def _content_length(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _range_start_total(value: str | None) -> tuple[int | None, int | None]:
    m = _RANGE_RE.match(value or "")
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


def _range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _hint(error_hint: str) -> str:
    return f" {error_hint}" if error_hint else ""


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def _reason(exc: BaseException) -> str:
    """A short reason for a requests/urllib3/socket error (no object reprs)."""
    text = str(exc)
    m = _ERRNO_RE.search(text)
    if m:
        return m.group(0).strip()
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "the host name cannot be resolved"
    if "timed out" in text.lower():
        return "timed out"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken"
    if len(text) > 200:
        text = text[:200] + "..."
    return text or type(exc).__name__


def _give_up_message(url: str, attempts: int, reason: str, part: Path, error_hint: str) -> str:
    if reason.startswith("HTTP "):
        advice = "The server is failing or busy; try again later."
    else:
        advice = "Check the network connection, proxy settings (HTTPS_PROXY) and the address."
    resume = (f" Running the command again resumes from {part} ({part.stat().st_size} bytes)."
              if part.exists() and part.stat().st_size else "")
    return (f"cannot download {url}: {reason} (gave up after {attempts} attempt{'s' if attempts != 1 else ''}). "
            f"{advice}{resume}{_hint(error_hint)}")


_CD_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_CD_PLAIN = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', re.IGNORECASE)


def content_disposition_name(value: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` header (``filename*`` preferred); ``None`` if absent or unsafe."""
    if not value:
        return None
    m = _CD_STAR.search(value)
    if m:
        try:
            name = unquote(m.group(2).strip(), encoding=m.group(1).strip() or "utf-8", errors="replace")
        except LookupError:
            name = unquote(m.group(2).strip(), errors="replace")
    else:
        m = _CD_PLAIN.search(value)
        if not m:
            return None
        name = m.group(1).replace('\\"', '"') if m.group(1) is not None else m.group(2).strip()
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name and name not in (".", "..") and "\x00" not in name else None
