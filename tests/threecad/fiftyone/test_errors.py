"""Bad input gives a clear message, never a hang; the database is ours alone."""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from threecad.errors import DataError, UsageError


def test_root_without_images(fo, tmp_path):
    from threecad.fiftyone import to_fiftyone

    (tmp_path / "empty" / "Copper_Stator" / "test").mkdir(parents=True)
    with pytest.raises(UsageError, match="has no test images"):
        to_fiftyone(tmp_path / "empty", media_dir=tmp_path / "m", name="t-empty")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UsageError, match="not a 3CAD tree"):
        to_fiftyone(tmp_path / "nothing", media_dir=tmp_path / "m", name="t-empty")
    assert not fo.dataset_exists("t-empty")


def test_predictions_for_another_dataset(fo, sample_root, tmp_path):
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.fiftyone import to_fiftyone
    from threecad.manifest import load_manifest
    from threecad.sample import write_sample

    other = tmp_path / "other"
    write_sample(other, seed=5, scale="tiny", categories=["CS"])
    preds = write_synthetic_submission(load_manifest(other), tmp_path / "preds")
    with pytest.raises(DataError, match="predictions for another dataset") as info:
        to_fiftyone(sample_root, preds=[preds], categories=["CS"], media_dir=tmp_path / "m", name="t-other")
    assert {p.kind for p in info.value.problems} >= {"extra_map"}
    with pytest.raises(UsageError, match="not a submission folder"):
        to_fiftyone(sample_root, preds=[tmp_path / "nope"], media_dir=tmp_path / "m", name="t-other")
    with pytest.raises(UsageError, match="--preds needs the test images"):
        to_fiftyone(sample_root, preds=[preds], split="train", media_dir=tmp_path / "m", name="t-other")


def test_two_submissions_with_one_method_name(fo, sample_root, sample_preds, tmp_path):
    from threecad.fiftyone import to_fiftyone

    with pytest.raises(UsageError, match="two submissions give the field name 'synthetic_demo'"):
        to_fiftyone(sample_root, preds=[sample_preds, sample_preds], categories=["CS"], media_dir=tmp_path / "m",
                    name="t-twice")


def test_port_in_use(fo):
    from threecad.fiftyone.app import check_port_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=f"127.0.0.1:{port}: the port is in use"):
            check_port_free("127.0.0.1", port)
    with pytest.raises(UsageError, match="between 1 and 65535"):
        check_port_free("127.0.0.1", 70000)


def test_database_that_cannot_start(mongo, tmp_path):
    from threecad.fiftyone.db import DatabaseError, start_mongod

    t0 = time.monotonic()
    with pytest.raises(DatabaseError, match="in use by another MongoDB server"):
        start_mongod(mongo.dbpath, timeout_s=30)  # our own server holds that folder
    with pytest.raises(DatabaseError, match="port is in use"):
        start_mongod(tmp_path / "db2", port=mongo.port, timeout_s=30)
    fake = tmp_path / "mongod"
    fake.write_text("#!/bin/sh\necho 'cannot run here' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(DatabaseError, match="could not start .*exit code 3"):
        start_mongod(tmp_path / "db3", mongod=fake, timeout_s=30)
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(hang.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(DatabaseError, match="did not answer .* within 2 s"):
        start_mongod(tmp_path / "db4", mongod=hang, timeout_s=2)
    assert time.monotonic() - t0 < 300  # the 2 s deadline held: the fake server sleeps 600 s


def test_fiftyone_uses_our_server_and_starts_none(fo, mongo):
    import psutil

    assert os.environ["FIFTYONE_DATABASE_URI"] == mongo.uri
    assert fo.config.database_uri == mongo.uri
    fo.list_datasets()  # connected
    servers = [p for p in psutil.Process().children(recursive=True) if p.name() == "mongod"]
    assert [p.pid for p in servers] == [mongo.pid]
    import fiftyone.core.odm.database as fod

    assert fod._db_service is None


def test_fiftyone_imports_after_the_importlib_metadata_backport():
    """Dask imports the importlib_metadata backport, whose finder broke `import fiftyone` (eta reads a
    metadata field its wheel lacks); the import must work in such a process too."""
    import subprocess
    import sys

    code = ("import importlib_metadata, sys\n"
            "from threecad.fiftyone.env import import_fiftyone\n"
            "fo = import_fiftyone()\n"
            "assert any(type(f).__module__.startswith('importlib_metadata') for f in sys.meta_path)\n"
            "print('ok', fo.__name__)\n")
    env = {k: v for k, v in os.environ.items()}
    env["FIFTYONE_DATABASE_URI"] = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100"  # never contacted
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok fiftyone" in proc.stdout
