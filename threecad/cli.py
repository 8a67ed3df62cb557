"""The ``threecad`` command line.

Only the standard library is imported here; each command imports what it needs when it
runs, so ``threecad --help`` answers at once and ``stats`` never loads torch or fiftyone.
Exit codes: 0 success, 1 the data has problems, 2 usage errors.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import sys
import threading
from typing import Sequence

from . import __version__
from . import cli_options as opt
from .errors import EXIT_USAGE, ThreecadError
from .eval.metric_names import Metric

__all__ = ["main", "build_parser"]

log = logging.getLogger("threecad")

STATS_FORMATS = ("table", "json", "csv", "markdown")  # mirrors threecad.stats.FORMATS
SCALES = ("tiny", "demo", "small")  # mirrors threecad.sample.SCALES
RANK_BY = tuple(m.value for m in Metric)  # the metric list lives in threecad.eval.metric_names
TABLE_SUFFIXES = (".parquet", ".csv")  # mirrors threecad.tables.TABLE_SUFFIXES


def _stats(sub) -> None:
    p = sub.add_parser("stats", help="the paper's dataset table (and per-image statistics) for a tree",
                       description="Scan a 3CAD tree, count regions in every mask, and print the "
                                   "paper's dataset table for it.")
    opt.add_root(p)
    opt.add_categories(p)
    opt.add_label_map(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--format", choices=STATS_FORMATS, default="table", help="output format (default: table)")
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    p.add_argument("--per-image", metavar="FILE", type=opt.output_file(TABLE_SUFFIXES, "table"),
                   help="write the per-image table to FILE (.parquet or .csv) and the per-region "
                        "table beside it (FILE's name with .regions before the extension); the image "
                        "table is written last, so it is there only with its region table")
    p.add_argument("--plots", metavar="DIR", type=opt.output_dir, help="write PNG charts into DIR")
    p.add_argument("--compare-published", action="store_true",
                   help="list where the tree differs from the published table (exit 1 if it does)")
    opt.add_threads(p, what="threads reading masks")
    opt.add_retired_workers(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.stats:run")


def _sample(sub) -> None:
    p = sub.add_parser("sample", help="write the synthetic sample dataset in the 3CAD layout",
                       description="Write a synthetic dataset in exactly the 3CAD layout (8 categories, "
                                   "train/test/ground_truth, six-digit names, 0/255 masks).")
    p.add_argument("out", metavar="OUT", type=opt.output_dir, help="new (or empty) folder to write")
    opt.add_seed(p)
    p.add_argument("--scale", choices=SCALES, default="tiny", help="tiny (seconds), demo (the demo's: enough good images for image metrics) or small (full sizes; default tiny)")
    p.add_argument("--names", choices=("english", "pinyin"), default="english",
                   help="defect folder names: English (current release) or Pinyin (older release)")
    opt.add_categories(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.sample:run")


def _download(sub) -> None:
    p = sub.add_parser("download", help="fetch the 3CAD archive (or DTD textures), verify and extract it",
                       description="Download the 3CAD archive from Google Drive (or any URL, or import an "
                                   "archive on disk), resume interrupted transfers, verify its sha256 and "
                                   "extract it safely into DEST.")
    p.add_argument("--release", choices=("english", "pinyin"), default="english",
                   help="which 3CAD release (default english: English defect names)")
    p.add_argument("--dtd", action="store_true", help="fetch the DTD textures used by the CFRG recipe instead")
    p.add_argument("--dest", metavar="DIR", type=opt.output_dir,
                   help="where the dataset goes (default: $THREECAD_ROOT, then ~/.local/share/threecad/3CAD; "
                        "DTD: beside it, in dtd/)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", metavar="URL", type=opt.http_url,
                     help="fetch this HTTP(S) archive instead (a mirror or a local server)")
    src.add_argument("--archive", metavar="FILE", type=opt.existing_file, help="import an archive already on disk")
    p.add_argument("--sha256", metavar="HEX", type=opt.sha256_hex,
                   help="expected sha256 of the archive (verified before extracting)")
    p.add_argument("--retries", type=opt.positive_int, default=5, metavar="N",
                   help="failed attempts allowed in a row per transfer (default 5); a transfer makes at most "
                        "4x as many attempts in all, even when each one brings some bytes")
    p.add_argument("--timeout", type=opt.positive_float, default=30.0, metavar="S",
                   help="network timeout in seconds: to connect, and between two reads (default 30)")
    p.add_argument("--stall-timeout", type=opt.positive_float, default=None, metavar="S",
                   help="give up an attempt that brings less than 1 KiB in S seconds (a trickling server; "
                        "default: 4x --timeout)")
    p.add_argument("--force", action="store_true", help="download and extract again even when DEST is complete")
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.download:run")


def _validate(sub) -> None:
    p = sub.add_parser("validate", help="audit a 3CAD tree: structure, pairing, masks, images, counts, duplicates",
                       description="Check a tree before trusting results. Every problem is reported at once, "
                                   "grouped by kind. Exit 0 when clean, 1 when problems were found.")
    opt.add_root(p)
    opt.add_categories(p)
    opt.add_label_map(p)
    p.add_argument("--expect", choices=("auto", "published", "none"), default="auto",
                   help="compare counts with the published table: 'published' always (missing categories "
                        "are errors), 'none' never, 'auto' (default) only for a tree with all 8 categories")
    p.add_argument("--no-near-duplicates", action="store_true", help="skip the perceptual-hash comparison")
    opt.add_json(p)
    opt.add_threads(p, what="threads reading images and masks")
    opt.add_retired_workers(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.validate:run")


def _split(sub) -> None:
    p = sub.add_parser("split", help="write split files: official train/test, validation, k-shot subsets",
                       description="Write the official train/test split, a validation split held out from "
                                   "train/good and k-shot training subsets, per category, as lists of image "
                                   "keys with the sha256 of the manifest they were drawn from.")
    opt.add_root(p)
    opt.add_categories(p)
    opt.add_label_map(p)
    p.add_argument("--out", metavar="FILE", default="splits.json", type=opt.output_file((".json", ".csv"), "split"),
                   help="output file, .json or .csv (default splits.json)")
    p.add_argument("--val-fraction", type=opt.fraction, default=0.1, metavar="F",
                   help="share of train/good held out for validation, in [0, 1) (default 0.1)")
    p.add_argument("--shots", type=opt.shot_sizes, default="1,2,4,8", metavar="K,K,...",
                   help="k-shot subset sizes, drawn from the training part (default 1,2,4,8; '' for none)")
    opt.add_seed(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.split:run")


def _eval(sub) -> None:
    p = sub.add_parser("eval", help="score a submission of anomaly maps (exact metrics)",
                       description="Validate a submission (PREDS/<Category>/test/<folder>/<stem>.npy|tif|png, "
                                   "optional scores.csv and submission.json), score every category it "
                                   "covers and write results.json, results.csv and results.md.")
    p.add_argument("preds", metavar="PREDS", type=opt.existing_path, help="the submission folder, or a .zip of it")
    opt.add_data_root(p)
    opt.add_protocol(p)
    p.add_argument("--out", metavar="DIR", type=opt.output_dir,
                   help="where results go (default: PREDS/results; for a zip PREDS-results beside it)")
    opt.add_categories(p)
    opt.add_label_map(p)
    opt.add_json(p, help="print results.json instead of the tables")
    p.add_argument("--plots", metavar="DIR", type=opt.output_dir,
                   help="write ROC, PR, PRO and image ROC curves (PNG, every category) into DIR")
    opt.add_threads(p, what="threads scoring")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS", type=opt.dask_address,
                         help="score on an existing Dask cluster (e.g. tcp://10.0.0.5:8786); needs the 'dask' extra")
    opt.add_workers(p, group=cluster, what="start a local Dask cluster of N worker processes; needs the 'dask' extra")
    opt.add_progress(p)
    p.add_argument("--timings", action="store_true", help="print the wall and CPU time of each phase on stderr")
    p.set_defaults(handler="threecad.commands.eval:run")


def _leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="score several submissions on one ground truth and rank them",
                       description="Validate and score several submissions (folders or .zip files) on the same "
                                   "ground truth, read once, and write leaderboard.md/.csv/.json plus each "
                                   "method's results.json. An invalid submission gets a row marked invalid.")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="submission folders or .zip files")
    opt.add_data_root(p)
    opt.add_protocol(p)
    p.add_argument("--out", metavar="DIR", default="leaderboard", type=opt.output_dir,
                   help="output folder (default ./leaderboard)")
    opt.add_categories(p)
    opt.add_label_map(p)
    p.add_argument("--include-published", action="store_true",
                   help="add the 3CAD paper's published rows, marked 'published, not re-scored'")
    p.add_argument("--bootstrap", type=opt.non_negative_int, default=0, metavar="N",
                   help="N stratified bootstrap resamples of the test images: percentile confidence intervals "
                        "(default 0: none)")
    p.add_argument("--confidence", type=opt.open_unit_interval, default=0.95, metavar="C",
                   help="interval level, between 0 and 1 (default 0.95)")
    opt.add_seed(p, help="bootstrap seed")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), type=opt.non_empty,
                   help="paired bootstrap comparison of methods A and B (names or submission paths); repeatable")
    p.add_argument("--html", metavar="DIR", type=opt.output_dir,
                   help="also write DIR/index.html: one self-contained page (tables, intervals, curves)")
    p.add_argument("--rank-by", default="pixel_auroc", choices=RANK_BY,
                   help="the mean metric that orders the methods (default pixel_auroc)")
    opt.add_threads(p, what="threads scoring")
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.leaderboard:run")


def _verify(sub) -> None:
    p = sub.add_parser("verify", help="re-score a submission and confirm a results.json",
                       description="Re-score SUBMISSION with the protocol and settings recorded in RESULTS and "
                                   "confirm that every digest and every number agrees (or name what differs).")
    p.add_argument("results", metavar="RESULTS", type=opt.existing_file,
                   help="a results.json written by threecad eval/leaderboard")
    p.add_argument("submission", metavar="SUBMISSION", type=opt.existing_path,
                   help="the submission folder or .zip")
    opt.add_data_root(p)
    opt.add_label_map(p)
    opt.add_threads(p, what="threads scoring")
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.verify:run")


def _train(sub) -> None:
    p = sub.add_parser("train", help="train a reference model (CFRG) on a 3CAD tree",
                       description="Train a reference model on the training images of one category (or all). "
                                   "Needs the 'model' extra (torch, torchvision).")
    p.add_argument("--model", choices=("cfrg",), default="cfrg", help="which model (default cfrg)")
    opt.add_data_root(p)
    cat = p.add_mutually_exclusive_group()
    cat.add_argument("--category", metavar="NAME", type=opt.category_name,
                     help="the category to train (code, folder name or alias)")
    cat.add_argument("--all-categories", action="store_true", help="train one model per category")
    p.add_argument("--out", metavar="DIR", default="runs", type=opt.output_dir, help="output folder (default ./runs)")
    p.add_argument("--epochs", type=opt.positive_int, default=None, metavar="N", help="epochs (default: the paper's)")
    p.add_argument("--max-steps", type=opt.positive_int, default=None, metavar="N",
                   help="stop after N steps (smoke runs)")
    p.add_argument("--batch-size", type=opt.positive_int, default=None, metavar="N",
                   help="batch size (default: the paper's)")
    p.add_argument("--image-size", type=opt.image_side, default=None, metavar="S",
                   help="input side in pixels, a multiple of 16 (default: the paper's 256; smaller for smoke runs)")
    p.add_argument("--device", default="cuda", metavar="DEV", type=opt.non_empty,
                   help="cuda or cpu (default cuda, CPU if none)")
    p.add_argument("--teacher-weights", metavar="FILE", type=opt.file_or_none,
                   help="teacher weights file for offline machines ('none': untrained teacher, smoke runs only)")
    p.add_argument("--dtd", metavar="DIR", type=opt.existing_dir,
                   help="DTD textures for synthetic anomalies (default: procedural)")
    p.add_argument("--splits", metavar="FILE", type=opt.existing_file,
                   help="split file from 'threecad split' (validation images)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --out")
    opt.add_workers(p, what="data-loader worker processes (0: load in this process)", allow_zero=True)
    opt.add_seed(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.train:run")


def _predict(sub) -> None:
    p = sub.add_parser("predict", help="write a submission of anomaly maps with a reference model",
                       description="Run a trained reference model (or the training-free baseline) over the "
                                   "test images and write a submission that 'threecad eval' scores.")
    p.add_argument("--model", choices=("cfrg", "baseline", "patchknn"), default="cfrg",
                   help="cfrg (needs --weights) or the training-free baseline (baseline = patchknn; fits on "
                        "train/good, CPU, seconds); default cfrg")
    p.add_argument("--weights", metavar="CKPT", type=opt.existing_path,
                   help="checkpoint (file, or folder of per-category checkpoints)")
    opt.add_data_root(p)
    p.add_argument("--out", metavar="PREDS", required=True, type=opt.output_dir, help="the submission folder to write")
    opt.add_categories(p)
    p.add_argument("--batch-size", type=opt.positive_int, default=16, metavar="N", help="batch size (default 16)")
    p.add_argument("--device", default="cuda", metavar="DEV", type=opt.non_empty,
                   help="cuda or cpu (default cuda, CPU if none)")
    opt.add_threads(p, what="threads of the PatchKNN baseline")
    opt.add_workers(p, what="CFRG data-loader worker processes (0: load in this process)", allow_zero=True)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.predict:run")


def _view(sub) -> None:
    p = sub.add_parser("view", help="explore a 3CAD tree and submissions in the FiftyOne app",
                       description="Build (or update) a persistent FiftyOne dataset of a 3CAD tree, with "
                                   "masks, regions and submissions' heatmaps, and open the app. Needs the "
                                   "'fiftyone' extra.")
    opt.add_root(p)
    opt.add_categories(p)
    opt.add_label_map(p)
    p.add_argument("--preds", nargs="+", metavar="PREDS", default=(), type=opt.existing_dir,
                   help="submission folders to add")
    p.add_argument("--split", choices=("test", "train", "all"), default="test", help="which images (default test)")
    p.add_argument("--port", type=opt.port_number, default=5151, metavar="PORT", help="app port (default 5151)")
    p.add_argument("--address", default="127.0.0.1", type=opt.non_empty, help="app address (default 127.0.0.1)")
    p.add_argument("--name", metavar="NAME", type=opt.non_empty, help="dataset name (default: from the root and split)")
    p.add_argument("--no-launch", action="store_true", help="only build the dataset")
    p.add_argument("--media-dir", metavar="DIR", type=opt.output_dir,
                   help="where mask and heatmap files go (default: <threecad cache>/fiftyone/media)")
    p.add_argument("--db-dir", metavar="DIR", type=opt.output_dir,
                   help="data folder of the private MongoDB server (default: <threecad cache>/fiftyone/db; "
                        "not used when $FIFTYONE_DATABASE_URI is set)")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--validate", action="store_true",
                     help="run 'threecad validate' first: tag duplicates and train/test leakage")
    val.add_argument("--validation-report", metavar="FILE", type=opt.existing_file,
                     help="tag duplicates and leakage from a 'threecad validate --json' report")
    p.add_argument("--timeout", type=opt.positive_float, default=60.0, metavar="S",
                   help="seconds to wait for the database and the app to answer (default 60)")
    opt.add_threads(p, what="threads reading masks and maps")
    opt.add_retired_workers(p)
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.view:run")


def _demo(sub) -> None:
    p = sub.add_parser("demo", help="build the sample (cached) and show its statistics",
                       description="The main job on the built-in sample: build it in a cache folder "
                                   "(once) and print its dataset table.")
    p.add_argument("--cache-dir", metavar="DIR", type=opt.output_dir,
                   help="where the sample is kept (default: $THREECAD_CACHE or ~/.cache/threecad)")
    opt.add_seed(p, help="sample seed")
    p.add_argument("--scale", choices=SCALES, default="demo", help="sample scale (default demo)")
    opt.add_progress(p)
    p.set_defaults(handler="threecad.commands.demo:run")


COMMANDS = (_stats, _sample, _download, _validate, _split, _eval, _leaderboard, _verify, _train, _predict,
            _view, _demo)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command (cheap: no heavy imports).

    The options that several commands share come from the builders of
    :mod:`threecad.cli_options`, which also type-check every number and path.
    """
    parser = opt.ThreecadArgumentParser(
        prog="threecad",
        description="Toolkit and scoring harness for the 3CAD industrial anomaly-detection benchmark.",
        epilog="Start with 'threecad demo'. Exit codes: 0 success, 1 the data has problems, 2 usage errors.",
    )
    parser.add_argument("--version", action="version", version=f"threecad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("threecad: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args.verbose)
    module_name, func_name = args.handler.split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(handler(args) or 0)
    except ThreecadError as exc:
        print(f"threecad {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("threecad: interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    """Console-script entry point."""
    _leave(main())


def _leave(code: int) -> None:
    """End the process with ``code`` without tearing the interpreter down.

    Python's own shutdown frees every module and object one by one, and with numba,
    llvmlite, pandas and pyarrow loaded that is a quarter of a second of garbage collection
    after the work is done (0.28 s of a 3.4 s ``threecad eval``). Nothing the commands wrote
    depends on it: results are written and closed before they are renamed into place. So,
    as mypy does, the process ends once the exit handlers have run (they stop services such
    as FiftyOne's database, remove temporary folders and flush logging) and standard output
    and error are flushed. A write error on that last flush (a closed pipe) ends it with
    120, as Python does. While any other thread still runs, Python's normal exit joins it.
    """
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # noqa: SLF001  (the handlers Python's exit would run, in its order)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry_point()
