"""The command-line options the accuracy benchmarks share, and how `--threads` takes effect.

bench_accuracy, bench_dense, bench_fidelity and bench_pruning each measure with codesign's
training, evaluation and calibration stages (bench_allocation too; it uses `use_threads`). Those stages read `$CODESIGN_THREADS`
(`codesign.pruning.batching.default_threads`), so `--threads` must set it, not only torch's
global thread count: `use_threads` does both.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def add_measurement_options(ap: argparse.ArgumentParser, *, cache: bool = True,
                            recipe: bool = True, threads: int | None = None) -> None:
    """--model, --glue-dir, --cache (if `cache`), --recipe (if `recipe`) and --threads
    (default `threads`; None: $CODESIGN_THREADS, else every CPU)."""
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--glue-dir", default=os.environ.get("CODESIGN_GLUE_DIR")
                    or str(ROOT.parent / "shared" / "data" / "glue"),
                    help="GLUE folder (default $CODESIGN_GLUE_DIR, else ../shared/data/glue)")
    if cache:
        ap.add_argument("--cache", default=None,
                        help="accuracy cache folder (default: the user's)")
    if recipe:
        ap.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the default recipe (repeatable)")
    ap.add_argument("--threads", type=int, default=threads,
                    help="torch threads for every stage (default: "
                         + (f"{threads})" if threads else "$CODESIGN_THREADS, else every CPU)"))


def use_threads(threads: int | None) -> None:
    """Run every stage of this process on `threads` threads (None: leave the default)."""
    if not threads:
        return
    import torch

    torch.set_num_threads(threads)
    os.environ["CODESIGN_THREADS"] = str(threads)  # every stage reads it (default_threads)
