"""Uniform vs latency-aware allocation at equal simulated latency, calibrated fidelity, SST-2.

For each block shape and speedup target on the headline accelerator (studies/fpga_zcu102.yaml:
board zcu102 with its preset's 32x32 ws array, tile-skip, int8, 200 MHz; `--set` overrides it):

* uniform: the smallest per-matrix ratio whose masks meet the target (`uniform_for_target`),
  each matrix losing its least salient blocks;
* latency-aware: `allocate` with the saliency relative to each matrix's output energy;

both from the same OBS saliency of the dense fine-tuned model (`calibrate.block_saliency`, the
recipe's calib_* fields and calibration sentences, as the `calibrated` fidelity draws them),
then the same calibrated re-fit (`calibrate.calibrate_masks`), then the dev metric
(`codesign.accuracy.dense.evaluate_dev`). The dense model comes from the accuracy cache
(`dense_checkpoint`: fine-tuned once by the recipe). Results are appended to OUT/results.jsonl,
one line per (block, speedup, allocation, recipe): a rerun skips what is there (resumable).

    python benchmarks/bench_allocation.py --out results/bench_allocation \
        [--blocks 16x16,1x16] [--speedups 1.5,2,3] [--recipe default] [--cache DIR] \
        [--calib-examples N] [--eval-examples N] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import hwmodels
from hwmodels.costs import build_costs

ALLOCATIONS = ("uniform", "latency-aware")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--blocks", default="16x16,1x16")
    p.add_argument("--speedups", default="1.5,2,3")
    p.add_argument("--allocations", default=",".join(ALLOCATIONS))
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--task", default="sst2")
    p.add_argument("--board", default="zcu102")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seq-len", type=int, default=128, help="simulated tokens per sequence")
    p.add_argument("--recipe", default="default", help="accuracy recipe preset")
    p.add_argument("--calib-examples", type=int, default=None)
    p.add_argument("--eval-examples", type=int, default=None)
    p.add_argument("--cache", default=None, help="accuracy cache (default: codesign's)")
    p.add_argument("--glue-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def _done(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in rows}


def _recipe(args):
    from dataclasses import replace

    from codesign.accuracy import Recipe

    recipe = Recipe.preset(args.recipe)
    changes = {k: v for k, v in (("calib_examples", args.calib_examples),
                                 ("eval_examples", args.eval_examples)) if v is not None}
    return replace(recipe, **changes) if changes else recipe


def _setup(args, recipe, block):
    """(dense checkpoint, loaded model, calibration batches, cost table, saliency)."""
    from codesign.accuracy import AccuracyCache
    from codesign.accuracy.dense import dense_checkpoint, train_split
    from codesign.checkpoints import load_model
    from codesign.cli.pruning import parse_set_items
    from codesign.pruning.calibrate import block_saliency, tokenise_calibration
    from codesign.workload import encoder_workload

    cache = AccuracyCache(args.cache) if args.cache else AccuracyCache()
    dense = dense_checkpoint(args.model, args.task, recipe, glue_dir=args.glue_dir, cache=cache)
    loaded = load_model(dense.path, task=args.task)
    split = train_split(args.task, recipe.calib_examples, recipe, args.glue_dir, stage=3)
    batches = tokenise_calibration(loaded.tokenizer, split, max_seq_len=recipe.max_seq_len,
                                   batch_size=recipe.batch_size)
    acc = hwmodels.load_board(args.board, parse_set_items(args.sets) or None)
    names = [n for n, _, _ in loaded.structure.prunable(loaded.model)]
    wl = encoder_workload(loaded.model.config.to_dict(), args.seq_len, 1, mask_names=names)
    table = build_costs(wl, acc, block)
    t0 = time.perf_counter()
    sal = block_saliency(loaded.model, loaded.structure, block_shape=tuple(table.block_shape),
                         calibration=batches, saliency=recipe.calib_saliency,
                         damping=recipe.calib_damping, threads=args.threads)
    return dense, loaded, batches, table, sal, time.perf_counter() - t0


def _measure(args, recipe, setup, allocation: str, speedup: float) -> dict:
    from codesign.accuracy.dense import dev_split, evaluate_dev
    from codesign.pruning.allocation import allocate, uniform_for_target
    from codesign.pruning.calibrate import calibrate_masks

    dense, loaded, batches, table, sal, _ = setup
    t0 = time.perf_counter()
    extra = {}
    if allocation == "uniform":
        ratio, masks, latency = uniform_for_target(table, sal.scores, speedup=speedup)
        extra["ratio"] = ratio
    else:
        a = allocate(table, sal.relative(), speedup=speedup)
        masks, latency = a.masks, a.latency_ms
        extra.update(moves=a.moves, trimmed=a.trimmed, swaps=a.swaps)
    t1 = time.perf_counter()
    model = copy.deepcopy(loaded.model)
    calibrate_masks(model, loaded.structure, masks=masks, calibration=batches,
                    damping=recipe.calib_damping, threads=args.threads)
    t2 = time.perf_counter()
    metrics = evaluate_dev(model, loaded.tokenizer, args.task,
                           dev_split(args.task, recipe, args.glue_dir), recipe)
    kept = sum(m.kept_weights for m in masks.values())
    total = sum(m.matrix_shape[0] * m.matrix_shape[1] for m in masks.values())
    return {"latency_ms": latency, "dense_ms": table.latency_ms({}),
            "target_ms": table.latency_ms({}) / speedup, "density": kept / total,
            "metrics": metrics, "dense_metrics": dense.metrics,
            "seconds": {"allocation": t1 - t0, "refit": t2 - t1,
                        "evaluate": time.perf_counter() - t2}, **extra}


def main() -> None:
    args = _args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    recipe = _recipe(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = _done(results)
    from codesign.hashing import short_hash

    recipe_key = short_hash(recipe.to_dict(), 12)
    for block in args.blocks.split(","):
        setup = None
        for speedup in (float(s) for s in args.speedups.split(",")):
            for allocation in args.allocations.split(","):
                key = f"{args.board}{sorted(args.sets)}-{block}-{speedup:g}-{allocation}-" \
                      f"{recipe_key}-seq{args.seq_len}"
                if key in done:
                    continue
                if setup is None:
                    setup = _setup(args, recipe, block)
                row = {"key": key, "block": block, "speedup": speedup, "allocation": allocation,
                       "board": args.board, "sets": args.sets, "recipe": recipe.to_dict(),
                       "saliency_seconds": setup[5], "load_average": os.getloadavg()[0],
                       **_measure(args, recipe, setup, allocation, speedup)}
                with open(results, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                done[key] = row
                print(f"{block:>6} {speedup:>4g}x {allocation:>13}: "
                      f"{row['latency_ms']:.4f} ms (target {row['target_ms']:.4f}), density "
                      f"{row['density']:.3f}, dev {row['metrics']}", flush=True)


if __name__ == "__main__":
    main()
