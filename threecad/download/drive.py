"""Google Drive downloads: the confirm page for large files and Drive's error pages.

Drive answers ``uc?export=download&id=ID`` for a large file with a "can't scan this file for
viruses" HTML page. Two styles exist:

* current: a ``<form id="download-form">`` whose action is
  ``https://drive.usercontent.google.com/download`` with hidden inputs ``id``, ``export``,
  ``confirm`` and often ``uuid``; the file comes from submitting that form (a GET);
* older: a ``download_warning_*`` cookie holding the token (and a link with ``confirm=``);
  the file comes from ``uc`` again with ``confirm=<token>``.

Any other HTML answer (quota exceeded, sign-in, no access, not found) becomes a
:class:`~threecad.download.errors.DriveError` telling the user to download the file in a
browser and import it with ``--archive``. The base URLs can be overridden (tests point them at
a local server): ``base_url`` arguments, else ``$THREECAD_DRIVE_URL`` and
``$THREECAD_DRIVE_USERCONTENT_URL``, else the module constants.
"""

from __future__ import annotations

import html
import logging
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Mapping
from urllib.parse import urljoin, urlsplit

import requests

from .errors import DriveError
from .http import (DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, HtmlHandler, Transfer, download_file,
                   make_session)

__all__ = [
    "DRIVE_URL",
    "DRIVE_USERCONTENT_URL",
    "DRIVE_URL_ENV",
    "DRIVE_USERCONTENT_URL_ENV",
    "drive_url",
    "drive_usercontent_url",
    "view_url",
    "browser_hint",
    "find_confirm",
    "describe_drive_page",
    "confirm_handler",
    "download_drive_file",
]

log = logging.getLogger(__name__)

DRIVE_URL = "https://drive.google.com/uc"
DRIVE_USERCONTENT_URL = "https://drive.usercontent.google.com/download"
DRIVE_URL_ENV = "THREECAD_DRIVE_URL"
DRIVE_USERCONTENT_URL_ENV = "THREECAD_DRIVE_USERCONTENT_URL"
MAX_CONFIRMS = 3


def drive_url(override: str | None = None) -> str:
    """The ``uc`` endpoint: ``override``, else ``$THREECAD_DRIVE_URL``, else :data:`DRIVE_URL`."""
    return override or os.environ.get(DRIVE_URL_ENV) or DRIVE_URL


def drive_usercontent_url(override: str | None = None) -> str:
    """The usercontent download endpoint (used when a confirm form has no action)."""
    return override or os.environ.get(DRIVE_USERCONTENT_URL_ENV) or DRIVE_USERCONTENT_URL


def view_url(file_id: str) -> str:
    """The page where a person can download ``file_id`` in a browser."""
    return f"https://drive.google.com/file/d/{file_id}/view"


def browser_hint(file_id: str) -> str:
    """What to do when Drive will not serve the file to a program."""
    return (f"Download it in a browser from {view_url(file_id)} (or try again later), then import it with "
            f"'threecad download --archive FILE' and the same --release/--dtd/--dest options.")


class _FormParser(HTMLParser):
    """Collects forms (action, id, named inputs) and links of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[str] = []
        self._form: _Form | None = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = _Form(action=a.get("action", ""), form_id=a.get("id", ""),
                               method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type", "text").lower() not in ("submit", "button", "image", "reset"):
                self._form.inputs[a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


@dataclass
class _Form:
    action: str
    form_id: str
    method: str
    inputs: dict[str, str] = field(default_factory=dict)


def _parse(page: str) -> _FormParser:
    parser = _FormParser()
    try:
        parser.feed(page)
        parser.close()
    except Exception:  # noqa: BLE001 - a malformed page must not crash: fall back to regexes
        log.debug("could not parse the Drive page as HTML", exc_info=True)
    return parser


def find_confirm(page: str, page_url: str, file_id: str, *, cookies: Mapping[str, str] | None = None,
                 base_url: str | None = None, usercontent_url: str | None = None
                 ) -> tuple[str, dict[str, str]] | None:
    """The request that confirms a Drive download, read from a confirm page.

    Parameters
    ----------
    page
        The HTML Drive answered.
    page_url
        Its URL (relative form actions and links are resolved against it).
    file_id
        The Drive file id asked for.
    cookies
        Cookies of the session (the older style puts the token in ``download_warning_*``).
    base_url, usercontent_url
        Overrides of the ``uc`` and usercontent endpoints.

    Returns
    -------
    tuple of (str, dict) or None
        ``(url, params)`` to request next, or ``None`` when the page is not a confirm page.
    """
    parsed = _parse(page)
    # Current style: the "Download anyway" form.
    for form in parsed.forms:
        if "confirm" in form.inputs or form.form_id == "download-form":  # submitted as GET, as Drive accepts
            action = form.action.strip() or drive_usercontent_url(usercontent_url)
            params = dict(form.inputs)
            params.setdefault("id", file_id)
            params.setdefault("export", "download")
            return urljoin(page_url, action), params
    # Older style: the token in a download_warning cookie.
    for name, value in (cookies or {}).items():
        if name.startswith("download_warning") and value:
            return drive_url(base_url), {"id": file_id, "export": "download", "confirm": value}
    # Older style: a link carrying confirm=TOKEN.
    for href in parsed.links:
        href = html.unescape(href)
        if "confirm=" in href and ("export=download" in href or "/uc" in href or "/download" in href):
            return urljoin(page_url, href), {}
    m = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if m:
        return drive_url(base_url), {"id": file_id, "export": "download", "confirm": m.group(1)}
    return None


def describe_drive_page(page: str, page_url: str, status: int) -> str:
    """Why Drive answered ``page`` instead of the file, in a few words."""
    parsed = _parse(page)
    title = " ".join(parsed.title.split())
    text = page.lower()
    if "quota" in text or "too many users have viewed or downloaded" in text:
        return "its download quota is exceeded (too many downloads in the last 24 hours)"
    if urlsplit(page_url).netloc.startswith("accounts.") or "servicelogin" in text:
        return "the file is not public (Drive asks to sign in)"
    if "you need access" in text or "request access" in text or status == 403:
        return "the file is not shared with everyone (no access)"
    if status == 404 or "not found" in text or "does not exist" in text:
        return "no such file (wrong id, or the file was removed)"
    if "virus" in text and "infected" in text:
        return "Drive flags the file as infected and only lets its owner download it"
    return f"an unexpected page ({title!r}, HTTP {status})" if title else f"an unexpected page (HTTP {status})"


def confirm_handler(file_id: str, session: requests.Session, *, base_url: str | None = None,
                    usercontent_url: str | None = None) -> HtmlHandler:
    """An html handler for :func:`~threecad.download.http.download_file` that passes confirm pages."""
    seen = 0

    def handle(resp: requests.Response, body: bytes) -> tuple[str, Mapping[str, str] | None]:
        nonlocal seen
        page = body.decode(resp.encoding or "utf-8", errors="replace")
        found = None
        if seen < MAX_CONFIRMS:
            found = find_confirm(page, resp.url, file_id, cookies=session.cookies.get_dict(),
                                 base_url=base_url, usercontent_url=usercontent_url)
        if found is None:
            reason = (describe_drive_page(page, resp.url, resp.status_code) if seen < MAX_CONFIRMS
                      else "it keeps answering with its confirm page")
            raise DriveError(f"Google Drive did not serve file {file_id}: {reason}. {browser_hint(file_id)}")
        seen += 1
        log.info("Google Drive asked to confirm the download of %s; confirming", file_id)
        return found

    return handle


def download_drive_file(file_id: str, target: str | Path, *, base_url: str | None = None,
                        usercontent_url: str | None = None, session: requests.Session | None = None,
                        retries: int = DEFAULT_RETRIES, timeout: float = DEFAULT_TIMEOUT,
                        backoff: float = DEFAULT_BACKOFF, progress: bool = False,
                        stall_timeout: float | None = None) -> Transfer:
    """Download Drive file ``file_id`` to ``target`` (resumable, confirm pages handled).

    Parameters
    ----------
    file_id
        The Drive file id.
    target
        Final path; ``<target>.part`` holds the bytes until the transfer completes.
    base_url, usercontent_url
        Overrides of :data:`DRIVE_URL` and :data:`DRIVE_USERCONTENT_URL` (see :func:`drive_url`).
    session, retries, timeout, backoff, progress, stall_timeout
        As in :func:`~threecad.download.http.download_file`.

    Returns
    -------
    Transfer

    Raises
    ------
    DriveError
        Drive answered a page that is not a confirm page (quota, access, not found).
    NetworkError, HTTPStatusError
        As in :func:`~threecad.download.http.download_file`.
    """
    own = session is None
    sess = session or make_session()
    try:
        return download_file(
            drive_url(base_url), target, params={"id": file_id, "export": "download"}, session=sess,
            retries=retries, timeout=timeout, backoff=backoff, progress=progress, stall_timeout=stall_timeout,
            html_handler=confirm_handler(file_id, sess, base_url=base_url, usercontent_url=usercontent_url),
            error_hint=browser_hint(file_id))
    finally:
        if own:
            sess.close()
