"""FiftyOne's noise is silenced, and the user's own settings win."""

from __future__ import annotations

import io
import os
import subprocess
import sys


def test_session_retry_lines_are_dropped_and_the_rest_kept():
    from threecad.fiftyone.env import _DropRetryLines

    out = io.StringIO()
    stream = _DropRetryLines(out)
    print("dataset ready", file=stream)
    print("\r\nCould not connect session, trying again in 10 seconds\r\n", file=stream)
    print("app: http://127.0.0.1:5151/", file=stream)
    print("", file=stream)
    assert out.getvalue() == "dataset ready\napp: http://127.0.0.1:5151/\n\n"


def test_quiet_settings_are_defaults_the_user_can_override(fo, monkeypatch):
    from threecad.fiftyone.env import QUIET_ENV, import_fiftyone

    monkeypatch.setenv("FIFTYONE_LOGGING_LEVEL", "DEBUG")
    for key in QUIET_ENV:
        if key != "FIFTYONE_LOGGING_LEVEL":
            monkeypatch.delenv(key, raising=False)
    import_fiftyone()
    assert os.environ["FIFTYONE_LOGGING_LEVEL"] == "DEBUG"
    assert os.environ["FIFTYONE_APP_ENABLE_QUERY_PERFORMANCE"] == "false"
    assert os.environ["FIFTYONE_DO_NOT_TRACK"] == "true"


def test_import_prints_no_deprecation_warning(tmp_path):
    code = ("import warnings; warnings.simplefilter('default')\n"
            "from threecad.fiftyone.db import configure_fiftyone_env\n"
            "configure_fiftyone_env('mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100', home=%r)\n"
            "from threecad.fiftyone.env import import_fiftyone; import_fiftyone()\n" % str(tmp_path / "fo"))
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("FIFTYONE_DATABASE_URI", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "DeprecationWarning" not in proc.stderr and "strawberry" not in proc.stderr
    assert proc.stdout == ""
