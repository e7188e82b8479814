"""How much of a GLUE training split the dense baseline needs: the default recipe's dense model
fine-tuned on several example budgets (the whole split included), each scored on the whole dev
split with its 95% bootstrap interval and its training seconds, printed as a table.

Every model goes through `codesign.accuracy.dense_checkpoint`, so it lands in the accuracy cache
(the default recipe's budget is then the very model the studies use) and a re-run is free; an
interrupted run resumes at the first budget not yet trained. What is ignored: seeds (one per
budget) and learning-rate tuning per budget (the recipe's rate for all; `--recipe` overrides it).

    python benchmarks/bench_dense.py                                   # SST-2: 2k, 8k, 16k, all
    python benchmarks/bench_dense.py --task stsb --budgets 2000,all
    python benchmarks/bench_dense.py --budgets 16000 --recipe dense_lr=3e-4
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere
from bench_options import add_measurement_options, use_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budgets", default="2000,8000,16000,all",
                    help="training examples per run, comma-separated; `all` = the whole split")
    add_measurement_options(ap)
    args = ap.parse_args(argv)
    budgets = [None if b.strip() == "all" else int(b) for b in args.budgets.split(",") if b]

    from codesign.accuracy import AccuracyCache, Recipe
    from codesign.accuracy.dense import dense_checkpoint
    from codesign.cli.accuracy import _parse_recipe_overrides

    base = _parse_recipe_overrides(tuple(args.recipe))
    cache = AccuracyCache(args.cache)
    rows = []
    use_threads(args.threads)
    for n in budgets:
        t0 = time.perf_counter()
        recipe = Recipe(**{**base, "dense_examples": n})
        dense = dense_checkpoint(args.model, args.task, recipe, glue_dir=args.glue_dir,
                                 cache=cache)
        low = dense.metrics.get(f"{dense.metric}_low", float("nan"))
        high = dense.metrics.get(f"{dense.metric}_high", float("nan"))
        took = time.perf_counter() - t0
        rows.append((n, dense.score, low, high, dense.seconds,
                     "cached" if took < 0.5 * dense.seconds else "trained now"))
        print(f"{'all' if n is None else n:>6} examples: {dense.metric} {dense.score:.3f} "
              f"[{low:.3f}, {high:.3f}], {dense.seconds:.0f} s", flush=True)
    changed = ", ".join(["dense_examples", *args.recipe])
    print(f"\n{args.task}, {args.model}, default recipe but {changed}; load average "
          f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs\n")
    print("| training examples | dev score [95% interval] | training + evaluation s | |")
    print("|---|---|---|---|")
    for n, score, low, high, seconds, how in rows:
        print(f"| {'whole split' if n is None else f'{n:,}'} | {score:.3f} [{low:.3f}, "
              f"{high:.3f}] | {seconds:.0f} | {how} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
