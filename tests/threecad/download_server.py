"""A local HTTP server for the download tests: plain files (with Range) and a fake Google Drive.

Runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a thread. Each served
file can be cut off after N bytes on its first request(s), or ignore ``Range``; the fake Drive
answers ``/uc`` and ``/download`` like Drive does: directly, with the current confirm form,
with the older ``download_warning`` cookie or ``confirm=`` link, or with an error page.
Every request is logged (path, query, headers) so tests can assert what the client sent.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONFIRM_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
<body><div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can't scan this
file for viruses.</p><p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id={id}">
3CAD.zip</a> (1.2G)</span> is too large for Google to scan for viruses. Would you still like to download
this file?</p><form id="download-form" action="{action}" method="get"><input type="submit"
id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="{uuid}"></form>
</div></div></body></html>"""

COOKIE_PAGE = """<html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>{link}</body></html>"""

QUOTA_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<p>Sorry, you can't view or download this file at this time.</p><p>Too many users have viewed or
downloaded this file recently. Please try accessing the file again later.</p></body></html>"""

NOT_FOUND_PAGE = """<html><head><title>Google Drive - Page Not Found</title></head><body>
<p>Sorry, the file you have requested does not exist.</p></body></html>"""

UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
COOKIE_TOKEN = "Xy_9abc"


@dataclass
class Served:
    """A file the server serves, and how it misbehaves."""

    data: bytes
    content_type: str = "application/octet-stream"
    cut_after: int | None = None  # close the connection after this many body bytes ...
    cut_times: int = 1  # ... on this many requests
    ignore_range: bool = False
    status: int | None = None  # answer this status (with an empty body) instead
    stall: float = 0.0  # seconds to wait after the headers, before the body
    trickle: float = 0.0  # seconds between two single bytes of the body (a trickling server)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    served: int = 0


@dataclass
class Logged:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class DriveFile:
    """A file of the fake Drive; ``style``: direct, form, cookie, link, quota."""

    served: Served
    style: str = "form"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(Logged(parts.path, query, {k: v for k, v in self.headers.items()}))
        if parts.path.startswith("/files/"):
            served = owner.files.get(parts.path[len("/files/"):])
            if served is None:
                return self._send(404, b"not found", "text/plain")
            return self._serve(served)
        if parts.path == "/uc":
            return self._drive_uc(query)
        if parts.path == "/download":
            return self._drive_download(query)
        self._send(404, b"not found", "text/plain")

    # --- plain files -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, served: Served) -> None:
        with self.server.owner.lock:
            served.served += 1
            nth = served.served
        if served.status is not None:
            return self._send(served.status, b"", "text/plain")
        data = served.data
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and not served.ignore_range:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
            body, status = data[start:end + 1], 206
            extra = {"Content-Range": f"bytes {start}-{start + len(body) - 1}/{len(data)}"}
        else:
            body, status, extra = data, 200, {}
        self.send_response(status)
        self.send_header("Content-Type", served.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if served.ignore_range else "bytes")
        for k, v in {**extra, **served.headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if served.stall:
            self.wfile.flush()
            time.sleep(served.stall)
        if served.cut_after is not None and nth <= served.cut_times:
            self.wfile.write(body[:served.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        if served.trickle:
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(served.trickle)
            except OSError:  # the client gave up
                self.close_connection = True
            return
        self.wfile.write(body)

    # --- fake Google Drive -------------------------------------------------------------------
    def _page(self, page: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, page.encode(), "text/html; charset=utf-8", headers)

    def _drive_uc(self, q: dict[str, str]) -> None:
        owner = self.server.owner
        f = owner.drive.get(q.get("id", ""))
        if f is None:
            return self._page(NOT_FOUND_PAGE, 404)
        if f.style == "quota":
            return self._page(QUOTA_PAGE)
        if f.style == "direct":
            return self._serve(f.served)
        if f.style == "form":  # Drive redirects uc to drive.usercontent.google.com/download
            self.send_response(303)
            self.send_header("Location", f"{owner.base}/download?id={q['id']}&export=download")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if q.get("confirm") == COOKIE_TOKEN and (f.style == "link" or COOKIE_TOKEN in self.headers.get("Cookie", "")):
            return self._serve(f.served)
        if f.style == "cookie":
            return self._page(COOKIE_PAGE.format(link=""), headers={
                "Set-Cookie": f"download_warning_13058876669334088843_{q['id']}={COOKIE_TOKEN}; Path=/"})
        link = f'<a id="uc-download-link" href="/uc?export=download&amp;confirm={COOKIE_TOKEN}&amp;id={q["id"]}">Download anyway</a>'
        return self._page(COOKIE_PAGE.format(link=link))

    def _drive_download(self, q: dict[str, str]) -> None:
        owner = self.server.owner
        f = owner.drive.get(q.get("id", ""))
        if f is None:
            return self._page(NOT_FOUND_PAGE, 404)
        if q.get("confirm") == "t" and q.get("uuid") == UUID:
            return self._serve(f.served)
        return self._page(CONFIRM_PAGE.format(id=q["id"], action=f"{owner.base}/download", uuid=UUID))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "DownloadServer"


class DownloadServer:
    """The test server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.drive: dict[str, DriveFile] = {}
        self.requests: list[Logged] = []
        self.lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def drive_url(self) -> str:
        """The fake Drive's ``uc`` endpoint (for ``drive_url=`` / ``$THREECAD_DRIVE_URL``)."""
        return f"{self.base}/uc"

    def add_file(self, name: str, data: bytes, **options) -> str:
        """Serve ``data`` at ``/files/<name>``; return its URL."""
        self.files[name] = Served(data, **options)
        return f"{self.base}/files/{name}"

    def add_drive(self, file_id: str, data: bytes = b"", style: str = "form", **options) -> Served:
        """Put ``data`` on the fake Drive under ``file_id``."""
        served = Served(data, **options)
        self.drive[file_id] = DriveFile(served, style)
        return served

    def requests_to(self, path_prefix: str) -> list[Logged]:
        """Logged requests whose path starts with ``path_prefix``."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def start(self) -> "DownloadServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "DownloadServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
