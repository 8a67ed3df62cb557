"""The ``threecad`` command line.

Only the standard library is imported here; each command imports what it needs when it
runs, so ``threecad --help`` answers at once and ``stats`` never loads torch or fiftyone.
Exit codes: 0 success, 1 the data has problems, 2 usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from . import __version__
from .errors import EXIT_USAGE, ThreecadError

__all__ = ["main", "build_parser"]

log = logging.getLogger("threecad")

STATS_FORMATS = ("table", "json", "csv", "markdown")  # mirrors threecad.stats.FORMATS
SCALES = ("tiny", "small")  # mirrors threecad.sample.SCALES


def _add_common_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--categories", nargs="+", metavar="NAME",
                   help="only these categories (codes such as ACC, folder names or aliases)")
    p.add_argument("--label-map", metavar="FILE",
                   help="extra Pinyin->English defect names (CSV 'pinyin,english' or JSON object)")


def _add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="ROOT",
                   help="the 3CAD tree (default: $THREECAD_ROOT, then the folder 'threecad download' uses)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command (cheap: no heavy imports)."""
    parser = argparse.ArgumentParser(
        prog="threecad",
        description="Toolkit and scoring harness for the 3CAD industrial anomaly-detection benchmark.",
        epilog="Start with 'threecad demo'. Exit codes: 0 success, 1 the data has problems, 2 usage errors.",
    )
    parser.add_argument("--version", action="version", version=f"threecad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="the paper's dataset table (and per-image statistics) for a tree",
                       description="Scan a 3CAD tree, count regions in every mask, and print the "
                                   "paper's dataset table for it.")
    p.add_argument("root", metavar="ROOT", help="folder holding the category folders")
    _add_common_data_options(p)
    p.add_argument("--format", choices=STATS_FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--per-image", metavar="FILE",
                   help="write the per-image table to FILE (.parquet or .csv) and the per-region "
                        "table beside it (FILE's name with .regions before the extension)")
    p.add_argument("--plots", metavar="DIR", help="write PNG charts into DIR")
    p.add_argument("--compare-published", action="store_true",
                   help="list where the tree differs from the published table (exit 1 if it does)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads reading masks (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.stats:run")

    p = sub.add_parser("sample", help="write the synthetic sample dataset in the 3CAD layout",
                       description="Write a synthetic dataset in exactly the 3CAD layout (8 categories, "
                                   "train/test/ground_truth, six-digit names, 0/255 masks).")
    p.add_argument("out", metavar="OUT", help="new (or empty) folder to write")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scale", choices=SCALES, default="tiny", help="tiny (seconds) or small (default tiny)")
    p.add_argument("--names", choices=("english", "pinyin"), default="english",
                   help="defect folder names: English (current release) or Pinyin (older release)")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories")
    p.set_defaults(handler="threecad.commands.sample:run")

    p = sub.add_parser("download", help="fetch the 3CAD archive (or DTD textures), verify and extract it",
                       description="Download the 3CAD archive from Google Drive (or any URL, or import an "
                                   "archive on disk), resume interrupted transfers, verify its sha256 and "
                                   "extract it safely into DEST.")
    p.add_argument("--release", choices=("english", "pinyin"), default="english",
                   help="which 3CAD release (default english: English defect names)")
    p.add_argument("--dtd", action="store_true", help="fetch the DTD textures used by the CFRG recipe instead")
    p.add_argument("--dest", metavar="DIR", help="where the dataset goes (default: $THREECAD_ROOT, then "
                                                 "~/.local/share/threecad/3CAD; DTD: beside it, in dtd/)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", metavar="URL", help="fetch this HTTP(S) archive instead (a mirror or a local server)")
    src.add_argument("--archive", metavar="FILE", help="import an archive already on disk")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 of the archive (verified before extracting)")
    p.add_argument("--retries", type=int, default=5, metavar="N", help="attempts per transfer (default 5)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds (default 30)")
    p.add_argument("--force", action="store_true", help="download and extract again even when DEST is complete")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.download:run")

    p = sub.add_parser("validate", help="audit a 3CAD tree: structure, pairing, masks, images, counts, duplicates",
                       description="Check a tree before trusting results. Every problem is reported at once, "
                                   "grouped by kind. Exit 0 when clean, 1 when problems were found.")
    p.add_argument("root", metavar="ROOT", help="folder holding the category folders")
    _add_common_data_options(p)
    p.add_argument("--expect", choices=("auto", "published", "none"), default="auto",
                   help="compare counts with the published table: 'published' always (missing categories "
                        "are errors), 'none' never, 'auto' (default) only for a tree with all 8 categories")
    p.add_argument("--no-near-duplicates", action="store_true", help="skip the perceptual-hash comparison")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="threads (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.validate:run")

    p = sub.add_parser("split", help="write split files: official train/test, validation, k-shot subsets",
                       description="Write the official train/test split, a validation split held out from "
                                   "train/good and k-shot training subsets, per category, as lists of image "
                                   "keys with the sha256 of the manifest they were drawn from.")
    p.add_argument("root", metavar="ROOT", help="folder holding the category folders")
    _add_common_data_options(p)
    p.add_argument("--out", metavar="FILE", default="splits.json",
                   help="output file, .json or .csv (default splits.json)")
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="share of train/good held out for validation (default 0.1)")
    p.add_argument("--shots", default="1,2,4,8", metavar="K,K,...",
                   help="k-shot subset sizes, drawn from the training part (default 1,2,4,8; '' for none)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(handler="threecad.commands.split:run")

    p = sub.add_parser("eval", help="score a submission of anomaly maps (exact metrics)",
                       description="Validate a submission (PREDS/<Category>/test/<folder>/<stem>.npy|tif|png, "
                                   "optional scores.csv and submission.json), score every category it "
                                   "covers and write results.json, results.csv and results.md.")
    p.add_argument("preds", metavar="PREDS", help="the submission folder, or a .zip of it")
    _add_data_root(p)
    p.add_argument("--protocol", choices=("standard", "paper"), default="standard",
                   help="standard (native size, exact MVTec AUPRO) or paper (the 3CAD authors' protocol)")
    p.add_argument("--out", metavar="DIR", help="where results go (default: PREDS/results; for a zip "
                                                "PREDS-results beside it)")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories (e.g. ACC,AI or ACC AI)")
    p.add_argument("--label-map", metavar="FILE", help="extra Pinyin->English defect names for the tree")
    p.add_argument("--json", action="store_true", help="print results.json instead of the tables")
    p.add_argument("--plots", metavar="DIR", help="write ROC, PR, PRO and image ROC curves (PNG, every category) into DIR")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads in this process (default: all CPUs)")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="score on an existing Dask cluster (e.g. tcp://10.0.0.5:8786); needs the 'dask' extra")
    cluster.add_argument("--workers", type=int, default=None, metavar="N",
                         help="start a local Dask cluster of N worker processes; needs the 'dask' extra")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.eval:run")

    p = sub.add_parser("leaderboard", help="score several submissions on one ground truth and rank them",
                       description="Validate and score several submissions (folders or .zip files) on the same "
                                   "ground truth, read once, and write leaderboard.md/.csv/.json plus each "
                                   "method's results.json. An invalid submission gets a row marked invalid.")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="submission folders or .zip files")
    _add_data_root(p)
    p.add_argument("--protocol", choices=("standard", "paper"), default="standard",
                   help="standard (native size, exact MVTec AUPRO) or paper (the 3CAD authors' protocol)")
    p.add_argument("--out", metavar="DIR", default="leaderboard", help="output folder (default ./leaderboard)")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories")
    p.add_argument("--label-map", metavar="FILE", help="extra Pinyin->English defect names for the tree")
    p.add_argument("--include-published", action="store_true",
                   help="add the 3CAD paper's published rows, marked 'published, not re-scored'")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="N stratified bootstrap resamples of the test images: percentile confidence intervals")
    p.add_argument("--confidence", type=float, default=0.95, metavar="C", help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="paired bootstrap comparison of methods A and B (names or submission paths); repeatable")
    p.add_argument("--html", metavar="DIR", help="also write DIR/index.html: one self-contained page (tables, curves)")
    p.add_argument("--rank-by", default="pixel_auroc",
                   choices=("pixel_auroc", "pixel_ap", "aupro", "image_auroc", "image_ap"),
                   help="the mean metric that orders the methods (default pixel_auroc)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="threads (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.leaderboard:run")

    p = sub.add_parser("verify", help="re-score a submission and confirm a results.json",
                       description="Re-score SUBMISSION with the protocol and settings recorded in RESULTS and "
                                   "confirm that every digest and every number agrees (or name what differs).")
    p.add_argument("results", metavar="RESULTS", help="a results.json written by threecad eval/leaderboard")
    p.add_argument("submission", metavar="SUBMISSION", help="the submission folder or .zip")
    _add_data_root(p)
    p.add_argument("--label-map", metavar="FILE", help="extra Pinyin->English defect names for the tree")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="threads (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.verify:run")

    p = sub.add_parser("train", help="train a reference model (CFRG) on a 3CAD tree",
                       description="Train a reference model on the training images of one category (or all). "
                                   "Needs the 'model' extra (torch, torchvision).")
    p.add_argument("--model", choices=("cfrg",), default="cfrg", help="which model (default cfrg)")
    _add_data_root(p)
    cat = p.add_mutually_exclusive_group()
    cat.add_argument("--category", metavar="NAME", help="the category to train (code, folder name or alias)")
    cat.add_argument("--all-categories", action="store_true", help="train one model per category")
    p.add_argument("--out", metavar="DIR", default="runs", help="output folder (default ./runs)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="epochs (default: the paper's)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N steps (smoke runs)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="batch size (default: the paper's)")
    p.add_argument("--image-size", type=int, default=None, metavar="S",
                   help="input side in pixels, a multiple of 16 (default: the paper's 256; smaller for smoke runs)")
    p.add_argument("--device", default="cuda", metavar="DEV", help="cuda or cpu (default cuda, CPU if none)")
    p.add_argument("--teacher-weights", metavar="FILE",
                   help="teacher weights file for offline machines ('none': untrained teacher, smoke runs only)")
    p.add_argument("--dtd", metavar="DIR", help="DTD textures for synthetic anomalies (default: procedural)")
    p.add_argument("--splits", metavar="FILE", help="split file from 'threecad split' (validation images)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --out")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="data-loader processes")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.train:run")

    p = sub.add_parser("predict", help="write a submission of anomaly maps with a reference model",
                       description="Run a trained reference model (or the training-free baseline) over the "
                                   "test images and write a submission that 'threecad eval' scores.")
    p.add_argument("--model", choices=("cfrg", "baseline", "patchknn"), default="cfrg",
                   help="cfrg (needs --weights) or the training-free baseline (baseline = patchknn; fits on "
                        "train/good, CPU, seconds); default cfrg")
    p.add_argument("--weights", metavar="CKPT", help="checkpoint (file, or folder of per-category checkpoints)")
    _add_data_root(p)
    p.add_argument("--out", metavar="PREDS", required=True, help="the submission folder to write")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="batch size (default 16)")
    p.add_argument("--device", default="cuda", metavar="DEV", help="cuda or cpu (default cuda, CPU if none)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="data-loader processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.predict:run")

    p = sub.add_parser("view", help="explore a 3CAD tree and submissions in the FiftyOne app",
                       description="Build (or update) a persistent FiftyOne dataset of a 3CAD tree, with "
                                   "masks, regions and submissions' heatmaps, and open the app. Needs the "
                                   "'fiftyone' extra.")
    p.add_argument("root", metavar="ROOT", help="folder holding the category folders")
    _add_common_data_options(p)
    p.add_argument("--preds", nargs="+", metavar="PREDS", default=(), help="submission folders to add")
    p.add_argument("--split", choices=("test", "train", "all"), default="test", help="which images (default test)")
    p.add_argument("--port", type=int, default=5151, help="app port (default 5151)")
    p.add_argument("--address", default="127.0.0.1", help="app address (default 127.0.0.1)")
    p.add_argument("--name", metavar="NAME", help="dataset name (default: from the root and split)")
    p.add_argument("--no-launch", action="store_true", help="only build the dataset")
    p.add_argument("--media-dir", metavar="DIR",
                   help="where mask and heatmap files go (default: <threecad cache>/fiftyone/media)")
    p.add_argument("--db-dir", metavar="DIR",
                   help="data folder of the private MongoDB server (default: <threecad cache>/fiftyone/db; "
                        "not used when $FIFTYONE_DATABASE_URI is set)")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--validate", action="store_true",
                     help="run 'threecad validate' first: tag duplicates and train/test leakage")
    val.add_argument("--validation-report", metavar="FILE",
                     help="tag duplicates and leakage from a 'threecad validate --json' report")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the database and the app to answer (default 60)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="threads reading masks and maps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="threecad.commands.view:run")

    p = sub.add_parser("demo", help="build the sample (cached) and show its statistics",
                       description="The main job on the built-in sample: build it in a cache folder "
                                   "(once) and print its dataset table.")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the sample is kept (default: $THREECAD_CACHE or ~/.cache/threecad)")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    p.add_argument("--scale", choices=SCALES, default="tiny", help="sample scale (default tiny)")
    p.set_defaults(handler="threecad.commands.demo:run")
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
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
