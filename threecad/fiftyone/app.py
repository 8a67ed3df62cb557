"""Launching the FiftyOne app on a checked port, with a timeout (never a hang)."""

from __future__ import annotations

import logging
import socket
import time

from ..errors import UsageError
from .db import DatabaseError

__all__ = ["check_port_free", "launch", "wait_until_serving"]

log = logging.getLogger(__name__)


def check_port_free(address: str, port: int) -> None:
    """UsageError when ``address:port`` cannot be bound (in use, or not an address of this machine)."""
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, port))
        except OSError as exc:
            raise UsageError(f"cannot serve the app on {address}:{port}: "
                             f"{'the port is in use (another app?)' if exc.errno == 98 else exc.strerror}; "
                             f"pass another --port") from None


def wait_until_serving(address: str, port: int, timeout_s: float = 60.0) -> None:
    """Wait until the app answers on ``http://address:port``; DatabaseError after ``timeout_s``."""
    import urllib.error
    import urllib.request

    url = f"http://{address}:{port}/fiftyone"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise DatabaseError(f"the FiftyOne app did not answer on {url} within {timeout_s:.0f} s")
        time.sleep(0.25)


def launch(fo, dataset, *, address: str = "127.0.0.1", port: int = 5151, timeout_s: float = 60.0):
    """Start the app for ``dataset`` (or a view of it) in remote mode (no browser is opened)
    and return the session once the app answers; DatabaseError when it does not in time."""
    from fiftyone.core.service import ServiceException

    from .env import silence_session_retries

    check_port_free(address, port)
    silence_session_retries()
    try:
        session = fo.launch_app(dataset, address=address, port=port, remote=True, auto=False)
    except ServiceException as exc:
        raise DatabaseError(f"the FiftyOne app could not start on {address}:{port} ({exc})") from None
    wait_until_serving(address, port, timeout_s)
    return session
