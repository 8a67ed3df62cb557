"""Scoring on a Dask cluster gives exactly the single-process results (``eval.distributed``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

from threecad.eval.distributed import (DistributedScorer, _chunks, local_cluster, pack_tally, sum_task,  # noqa: E402
                              unpack_tally)
from threecad.eval.engine import NegativeCounts  # noqa: E402
from threecad.eval.pixels import NegativeTally  # noqa: E402
from threecad.eval.protocols import get_protocol  # noqa: E402
from threecad.eval.results import results_json  # noqa: E402
from threecad.eval.submission import SubmissionError, load_submission  # noqa: E402
from threecad.eval.synthetic import write_synthetic_submission  # noqa: E402
from threecad.commands.eval import score_submission  # noqa: E402
from threecad.manifest import scan  # noqa: E402

CATEGORIES = ["CS", "AI"]


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1, for the whole module."""
    cl = local_cluster(2, memory_limit="1GiB")
    client = Client(cl)
    yield cl, client
    client.close()
    cl.close()


@pytest.fixture
def client(cluster):
    cl, c = cluster
    c.wait_for_workers(2, timeout=60)
    return c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny two-category sample and two synthetic submissions of it."""
    from threecad.sample import write_sample

    base = tmp_path_factory.mktemp("dist")
    root = base / "3cad"
    write_sample(root, seed=0, scale="tiny", categories=CATEGORIES)
    manifest = scan(root).manifest
    preds = write_synthetic_submission(manifest, base / "preds", seed=1)
    preds2 = write_synthetic_submission(manifest, base / "preds2", seed=2, method="second")
    return root, preds, preds2


def plain(results: dict) -> dict:
    """results.json as written (NaN as null), without ``created`` and ``command``."""
    r = json.loads(results_json(results))
    r.pop("created"), r.pop("command")
    return r


@pytest.mark.parametrize("protocol", ["standard", "paper"])
def test_cluster_equals_single_process(client, data, protocol):
    root, preds, _ = data
    single = plain(score_submission(preds, root, protocol_name=protocol))
    report: dict = {}
    dist = plain(score_submission(preds, root, protocol_name=protocol, client=client, chunk_size=2, report=report))
    assert dist == single
    assert set(dist["categories"]) == {"Copper_Stator", "Aluminum_Ipad"}
    assert all(c["by_type"] and set(c["by_size"]) == {"small", "medium", "large"}
               for c in dist["categories"].values())
    # several chunks per category, hence a tree of pairwise sums (n - 1 per category)
    assert report["pass1_tasks"] > 2 * len(CATEGORIES) and report["pass2_tasks"] == report["pass1_tasks"]
    assert report["sum_tasks"] == report["pass2_tasks"] - len(CATEGORIES)
    assert report["pass1_result_bytes"] > 0 and report["pass2_map_bytes"] == report["pass1_map_bytes"] > 0


def test_ground_truth_is_read_once_per_dataset(client, data, tmp_path):
    root, preds, preds2 = data
    copy = tmp_path / "3cad"
    shutil.copytree(root, copy)
    expected = plain(score_submission(preds2, copy))
    scan_result = scan(copy)
    scorer = DistributedScorer(client, scan_result, get_protocol("standard"), chunk_size=2)
    first = scorer.score(load_submission(preds, scan_result.manifest))
    assert plain(first) == plain(score_submission(preds, copy))
    submitted = scorer.truth_tasks_submitted
    assert submitted == scorer.last_report["truth_tasks"] > 0
    # The masks are gone: the second submission can only be scored from the ground truth
    # kept on the cluster.
    for gt in copy.glob("*/ground_truth"):
        gt.rename(gt.with_name("ground_truth.moved"))
    second = scorer.score(load_submission(preds2, scan_result.manifest))
    assert plain(second) == expected
    assert scorer.truth_tasks_submitted == submitted and scorer.last_report["truth_tasks"] == 0


@pytest.mark.parametrize("victims", ["one", "all"])
def test_killed_workers_change_nothing(client, data, victims):
    """SIGKILL worker processes after the first pass-2 task: Dask reruns their tasks and
    recomputes lost ground truth; when every copy of a category's scattered index is gone
    (``all``), that category's pass 2 is counted again. The result stays exact."""
    root, preds, _ = data
    expected = plain(score_submission(preds, root))
    scan_result = scan(root)
    pids = sorted(client.run(os.getpid).values())
    doomed = pids[:1] if victims == "one" else pids
    events: list[str] = []

    def on_progress(phase, category, chunk):
        events.append(phase)
        if phase == "pass2" and "killed" not in events:  # other pass-2 tasks are still pending
            for pid in doomed:
                os.kill(pid, signal.SIGKILL)
            events.append("killed")

    scorer = DistributedScorer(client, scan_result, get_protocol("standard"), chunk_size=1, on_progress=on_progress)
    result = scorer.score(load_submission(preds, scan_result.manifest))
    assert "killed" in events and "pass2" in events[events.index("killed"):]  # work went on after the kill
    assert plain(result) == expected
    if victims == "all":
        assert scorer.last_report["pass2_restarts"] >= 1
    client.wait_for_workers(2, timeout=60)
    assert not set(doomed) & set(client.run(os.getpid).values())  # they really died


def test_structurally_invalid_submission_fails_before_any_task(client, data, tmp_path, monkeypatch):
    root, preds, _ = data
    bad = tmp_path / "preds"
    shutil.copytree(preds, bad)
    next(iter(sorted(bad.rglob("*.npy")))).unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("cluster work was submitted for an invalid submission")

    before = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)))
    for name in ("submit", "map", "scatter", "compute", "publish_dataset"):
        monkeypatch.setattr(client, name, refuse)
    with pytest.raises(SubmissionError, match="missing_map"):
        score_submission(bad, root, client=client)
    after = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)))
    assert after <= before


def test_content_problems_are_collected_from_every_task(client, data, tmp_path):
    root, preds, _ = data
    bad = tmp_path / "preds"
    shutil.copytree(preds, bad)
    for cat, value in (("Copper_Stator", np.full((8, 8), np.nan)), ("Aluminum_Ipad", np.zeros((2, 3, 3)))):
        np.save(sorted((bad / cat).rglob("*.npy"))[-1], value)
    with pytest.raises(SubmissionError) as single:
        score_submission(bad, root)
    with pytest.raises(SubmissionError) as dist:
        score_submission(bad, root, client=client, chunk_size=2)
    assert len(dist.value.problems) == 2
    assert dist.value.problems == single.value.problems
    assert str(dist.value) == str(single.value)


def run_cli(*args, code: str | None = None):
    cmd = [sys.executable, "-m", "threecad", *map(str, args)] if code is None else \
        [sys.executable, "-c", code, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


NO_DASK = """
import sys
from threecad.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in ("dask", "distributed") if m in sys.modules)
assert not loaded, f"a default run imported {loaded}"
sys.exit(rc)
"""


def test_cli_workers_equals_default_run_which_imports_no_dask(data, tmp_path):
    root, preds, _ = data
    run_cli("eval", preds, "--data-root", root, "--out", tmp_path / "r1", "--no-progress", code=NO_DASK)
    proc = run_cli("eval", preds, "--data-root", root, "--out", tmp_path / "r2", "--workers", "2", "--no-progress")
    assert "cluster: " in proc.stderr and "kB per task" in proc.stderr
    r1, r2 = (json.loads((tmp_path / r / "results.json").read_text()) for r in ("r1", "r2"))
    for r in (r1, r2):
        r.pop("created"), r.pop("command")
    assert r1 == r2


def test_without_dask_the_cluster_options_are_a_usage_error(data, monkeypatch, capsys):
    import importlib.util

    from threecad.cli import main

    root, preds, _ = data
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name in ("dask", "distributed") else real(name, *a, **k))
    for option in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert main(["eval", str(preds), "--data-root", str(root), *option]) == 2
        assert "pip install 'threecad[dask]'" in capsys.readouterr().err
    assert not (preds / "results").exists()


def test_packed_tallies_add_exactly():
    rng = np.random.default_rng(0)
    k = 1000
    a, b = NegativeTally(k), NegativeTally(k)
    sparse = a.for_group(0)
    sparse.below[[0, 17, k]] = [5, 2**40, 1]   # sparse, one count beyond 32 bits
    sparse.on[3] = 7
    dense = b.for_group(0)
    dense.below[:] = rng.integers(0, 9, k + 1)
    dense.on[:] = rng.integers(0, 9, k)
    b.for_group(2).on[:] = 1
    for t in (a, b):
        back = unpack_tally(pack_tally(t))
        assert back.counts.keys() == t.counts.keys()
        for g, c in t.counts.items():
            assert np.array_equal(back.counts[g].below, c.below) and np.array_equal(back.counts[g].on, c.on)
            assert back.counts[g].below.dtype == np.int64
    total = unpack_tally(sum_task(pack_tally(a), pack_tally(b)))
    expect = NegativeCounts(sparse.below + dense.below, sparse.on + dense.on)
    assert np.array_equal(total.counts[0].below, expect.below) and np.array_equal(total.counts[0].on, expect.on)
    assert np.array_equal(total.counts[2].on, np.ones(k, np.int64))
    assert pack_tally(a).nbytes < pack_tally(b).nbytes


def test_chunks_cover_rows_in_order():
    for n, size in ((0, 4), (1, 4), (10, 4), (256, 128), (257, 128)):
        spans = _chunks(n, size)
        assert [i for a, b in spans for i in range(a, b)] == list(range(n))
        assert all(b - a <= size for a, b in spans)
