"""Uniform vs latency-aware allocation at equal simulated latency, SST-2, calibrated and retrained.

For each block shape and speedup target on the headline accelerator (board zcu102 with its
preset's 32x32 ws array, tile-skip, int8, 200 MHz; `--set` overrides it, e.g.
`--set sparse_strategy=compact`):

* uniform: the smallest per-matrix ratio whose masks meet the target (`uniform_for_target`,
  judged by `hwmodels.simulate`, so crediting the heads and FFN neurons the masks remove
  entirely), each matrix losing its least salient blocks;
* uniform-balanced: the same with PE-balanced masks (`codesign.pruning.balance`; under
  compaction its load imbalance is near 1.0, so a smaller ratio meets the target);
* latency-aware: `allocate` with the saliency relative to each matrix's output energy
  (`--importance raw`: the saliency itself), its target judged by simulate too;

* global (the recipe's calib_saliency fisher only): the smallest overall ratio whose masks,
  ranked across all matrices by `fisher.global_keep` (the calibrated fidelity's default ranking,
  here without its per-matrix floor: each matrix its own density), meet the target;

all from the same saliency of the dense fine-tuned model, the recipe's calib_saliency (Fisher by
default, `fisher.fisher_scores`, which latency-aware then uses as it is: it is in units of the
task loss; obs: `calibrate.block_saliency`), on the recipe's calibration sentences as the
`calibrated` fidelity draws them,
then the same calibrated re-fit (`calibrate.calibrate_masks`), then the dev metric
(`codesign.accuracy.dense.evaluate_dev`): variant `calibrated`. Variant `retrain` continues from
those weights with the retrain fidelity's recovery stage (`measurement.retrain_masked`:
distilled masked retraining, held-out check) and scores again. The dense model comes from the
accuracy cache (`dense_checkpoint`: fine-tuned once by the recipe). Results are appended to
OUT/results.jsonl, one line per (accelerator, block, speedup, allocation, variants, recipe): a
rerun prints what is there and measures only the rest (resumable).

    python benchmarks/bench_allocation.py --out results/bench_allocation \
        [--blocks 16x16,1x16] [--speedups 1.5,2,3] [--allocations uniform,latency-aware] \
        [--variants calibrated,retrain] [--set sparse_strategy=compact] [--recipe default] \
        [--saliency fisher|obs|norm] [--cache DIR] [--calib-examples N] [--eval-examples N] \
        [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import hwmodels
from hwmodels.costs import build_costs

from codesign.pruning.allocation import default_min_density

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere
from bench_options import use_threads  # noqa: E402

#: uniform-balanced: the smallest uniform ratio whose PE-balanced masks meet the target
#: (codesign.pruning.balance; it changes anything only under sparse_strategy=compact)
#: global: the smallest overall ratio whose Fisher-ranked masks (`fisher.global_keep`, each
#: matrix its own density: the calibrated fidelity's default ranking, without its floor) meet
#: the target
ALLOCATIONS = ("uniform", "latency-aware", "uniform-balanced", "global")
VARIANTS = ("calibrated", "retrain")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--blocks", default="16x16,1x16")
    p.add_argument("--speedups", default="1.5,2,3")
    p.add_argument("--allocations", default=",".join(ALLOCATIONS[:2]),
                   help=f"comma list of {', '.join(ALLOCATIONS)}")
    p.add_argument("--importance", default="relative", choices=("relative", "raw"),
                   help="latency-aware importance: saliency over each matrix's output energy "
                        "(relative) or the saliency itself (raw)")
    p.add_argument("--min-density", type=float, default=None,
                   help="latency-aware: the fraction of its blocks every matrix keeps at least "
                        "(0: no floor; default: allocation.default_min_density of the saliency: "
                        "0 for fisher, 0.25 for obs and norm)")
    p.add_argument("--variants", default="calibrated",
                   help="comma list: calibrated (re-fit only) and/or retrain (then the retrain "
                        "fidelity's distilled masked retraining with its held-out check)")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--task", default="sst2")
    p.add_argument("--board", default="zcu102")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seq-len", type=int, default=128, help="simulated tokens per sequence")
    p.add_argument("--recipe", default="default", help="accuracy recipe preset")
    p.add_argument("--saliency", default=None, choices=("fisher", "obs", "norm"),
                   help="the recipe's calib_saliency (default: the recipe's, fisher)")
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
                                 ("calib_saliency", args.saliency),
                                 ("eval_examples", args.eval_examples)) if v is not None}
    return replace(recipe, **changes) if changes else recipe


def _setup(args, recipe, block):
    """(dense checkpoint, loaded model, calibration batches, cost table, saliency)."""
    from codesign.accuracy import AccuracyCache
    from codesign.accuracy.dense import dense_checkpoint, train_split
    from codesign.checkpoints import load_model
    from codesign.cli.pruning import parse_set_items
    from codesign.pruning.calibrate import block_saliency, tokenise_calibration
    from codesign.pruning.fisher import fisher_scores
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
    if recipe.calib_saliency == "fisher":
        sal = fisher_scores(loaded.model, loaded.structure, block_shape=tuple(table.block_shape),
                            calibration=batches, examples=recipe.calib_fisher_examples,
                            threads=args.threads)
    else:
        sal = block_saliency(loaded.model, loaded.structure,
                             block_shape=tuple(table.block_shape), calibration=batches,
                             saliency=recipe.calib_saliency, damping=recipe.calib_damping,
                             threads=args.threads)
    return dense, loaded, batches, table, sal, time.perf_counter() - t0


def _masks_for(setup, allocation: str, speedup: float, importance: str,
               min_density: float) -> tuple[dict, float, dict]:
    """(masks, simulated latency ms, what the allocation reports) of one allocation."""
    from codesign.pruning.allocation import allocate
    from codesign.pruning.balance import PEBalance
    from codesign.pruning.fisher import FisherSaliency, global_masks
    from codesign.pruning.latency_aware import allocation_importance
    from codesign.pruning.uniform import ratio_for_target, uniform_for_target

    table, sal = setup[3], setup[4]
    if allocation == "latency-aware":
        a = allocate(table, allocation_importance(sal, importance), speedup=speedup,
                     min_density=min_density)
        return a.masks, a.latency_ms, {"moves": a.moves, "trimmed": a.trimmed, "swaps": a.swaps}
    if allocation == "global":
        if not isinstance(sal, FisherSaliency):
            raise SystemExit("bench_allocation: allocation global needs calib_saliency=fisher")
        shapes = {n: m.matrix_shape for n, m in table.matrices.items()}
        ratio, masks, latency = ratio_for_target(
            table, lambda r: global_masks(sal.scores, ratio=r, block_shape=table.block_shape,
                                          matrix_shapes=shapes),
            speedup=speedup, structure="carry")
        return masks, latency, {"ratio": ratio}
    balance = PEBalance.of(table.accelerator) if allocation == "uniform-balanced" else None
    ratio, masks, latency = uniform_for_target(table, sal.scores, speedup=speedup,
                                               balance=balance, structure="carry")
    return masks, latency, {"ratio": ratio}


def _measure(args, recipe, setup, allocation: str, speedup: float, variants: list[str]) -> dict:
    """One allocation's masks, re-fitted (`calibrated`), then, with `retrain` in `variants`,
    recovered by the retrain fidelity's distilled masked retraining and held-out check."""
    from codesign.accuracy import AccuracyCache
    from codesign.accuracy.dense import dev_split, evaluate_dev
    from codesign.accuracy.fidelities import retrain_masked
    from codesign.pruning.calibrate import calibrate_masks

    dense, loaded, batches, table, sal, _ = setup
    t0 = time.perf_counter()
    try:
        masks, latency, extra = _masks_for(setup, allocation, speedup, args.importance,
                                           args.min_density)
    except ValueError as exc:  # a target out of reach for this allocation
        return {"unreachable": str(exc), "target_ms": table.latency_ms({}) / speedup}
    t1 = time.perf_counter()
    model = copy.deepcopy(loaded.model)
    calibrate_masks(model, loaded.structure, masks=masks, calibration=batches,
                    damping=recipe.calib_damping, threads=args.threads)
    dev = dev_split(args.task, recipe, args.glue_dir)
    seconds = {"allocation": t1 - t0, "refit": time.perf_counter() - t1}
    metrics, recovery = {}, None
    for variant in variants:
        t2 = time.perf_counter()
        if variant == "retrain":
            cache = AccuracyCache(args.cache) if args.cache else AccuracyCache()
            recovery = retrain_masked(dataclasses.replace(loaded, model=model), masks, recipe, args.task,
                                      dense=dense, cache=cache, glue_dir=args.glue_dir)
        metrics[variant] = evaluate_dev(model, loaded.tokenizer, args.task, dev, recipe)
        seconds[variant] = time.perf_counter() - t2
    kept = sum(m.kept_weights for m in masks.values())
    total = sum(m.matrix_shape[0] * m.matrix_shape[1] for m in masks.values())
    imbalance = hwmodels.simulate(table.workload, table.accelerator, masks,
                                  table.engine).load_imbalance
    return {"latency_ms": latency, "dense_ms": table.latency_ms({}),
            "target_ms": table.latency_ms({}) / speedup, "density": kept / total,
            "load_imbalance": imbalance, "metrics": metrics, "recovery": recovery,
            "dense_metrics": dense.metrics, "seconds": seconds, **extra}


def _print(row: dict) -> None:
    head = f"{row['block']:>6} {row['speedup']:>4g}x {row['allocation']:>16}:"
    if "unreachable" in row:
        print(f"{head} unreachable ({row['unreachable']})", flush=True)
        return
    scores = ", ".join(f"{v} {m['accuracy']:.4f}" if "accuracy" in m else f"{v} {m}"
                       for v, m in row["metrics"].items())
    print(f"{head} {row['latency_ms']:.4f} ms (target {row['target_ms']:.4f}), density "
          f"{row['density']:.3f}, imbalance {row['load_imbalance']:.2f}, {scores}", flush=True)


def main() -> None:
    args = _args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    use_threads(args.threads)  # the retraining too: it reads $CODESIGN_THREADS
    recipe = _recipe(args)
    if args.min_density is None:
        args.min_density = default_min_density(recipe.calib_saliency)
    variants = args.variants.split(",")
    bad = sorted(set(variants) - set(VARIANTS)) + sorted(
        set(args.allocations.split(",")) - set(ALLOCATIONS))
    if bad:
        raise SystemExit(f"bench_allocation: unknown {bad}; variants: {', '.join(VARIANTS)}; "
                         f"allocations: {', '.join(ALLOCATIONS)}")
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
                      f"{'+'.join(variants)}-{recipe_key}-seq{args.seq_len}"
                if allocation == "latency-aware" and args.importance != "relative":
                    key += f"-{args.importance}"
                if allocation == "latency-aware" and args.min_density:
                    key += f"-floor{args.min_density:g}"
                if key in done:
                    _print(done[key])
                    continue
                if setup is None:
                    setup = _setup(args, recipe, block)
                row = {"key": key, "block": block, "speedup": speedup, "allocation": allocation,
                       "importance": ("fisher" if recipe.calib_saliency == "fisher"
                                      else args.importance), "min_density": args.min_density,
                       "board": args.board, "sets": args.sets, "recipe": recipe.to_dict(),
                       "saliency_seconds": setup[5], "load_average": os.getloadavg()[0],
                       **_measure(args, recipe, setup, allocation, speedup, variants)}
                with open(results, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                done[key] = row
                _print(row)


if __name__ == "__main__":
    main()
