"""The shape of the seed paper's accuracy-vs-compression result, measured on all-MiniLM-L6-v2.

For each GLUE task and block shape (1x1 = unstructured reference, 16x16, 256x1 by default) the
encoder matrices are pruned to compression 1.5x, 2x, 3x, 5x (block ratio = 1 - 1/compression),
at fidelity `retrain` (or `oneshot` / `rgl`), through `codesign.accuracy.measure`, so every
point lands in the accuracy cache and a rerun is free. Writes, under benchmarks/out/:
accuracy_bench.md (table + wall time + recipe), accuracy_bench.csv, accuracy_bench.png.

What is measured: the dev metric of the pruned model and of the dense fine-tuned model (the 1x
column), the actual weight compression of the masks (256x1 blocks do not divide MiniLM's 384-row
matrices, so the padded edge block makes its real compression lower than the nominal one).
What is ignored: the paper's training budget (full training sets, 3 epochs, seq 128); here the
budget is the Recipe given on the command line (defaults sized for a 2-core CPU), so the absolute
scores are low-budget ones and the comparison between block shapes is the result.

    python benchmarks/bench_accuracy.py                      # SST-2, MRPC, RTE; default recipe
    python benchmarks/bench_accuracy.py --tasks sst2 --retrain-examples 1000 --threads 2
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from codesign.accuracy.recipe import FIDELITIES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere
from bench_options import OUT, add_measurement_options, use_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="sst2,mrpc,rte")
    ap.add_argument("--blocks", default="1x1,16x16,256x1")
    ap.add_argument("--compressions", default="1.5,2,3,5")
    ap.add_argument("--fidelity", default="retrain", choices=FIDELITIES)
    add_measurement_options(ap, recipe=False, threads=2)
    ap.add_argument("--dense-examples", type=int, default=None)
    ap.add_argument("--retrain-examples", type=int, default=None)
    ap.add_argument("--eval-examples", type=int, default=None)
    ap.add_argument("--seq", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--name", default="accuracy_bench")
    args = ap.parse_args(argv)

    use_threads(args.threads)  # 2-core machine: set explicitly, do not oversubscribe
    from codesign.accuracy import AccuracyCache, Recipe, measure
    from codesign.glue import get_task

    overrides = {"seed": args.seed}
    for key, val in [("dense_examples", args.dense_examples),
                     ("retrain_examples", args.retrain_examples),
                     ("eval_examples", args.eval_examples), ("max_seq_len", args.seq)]:
        if val is not None:
            overrides[key] = val
    recipe = Recipe.from_dict(overrides)
    cache = AccuracyCache(args.cache)
    tasks = [get_task(t).name for t in args.tasks.split(",") if t]
    blocks = [b.strip() for b in args.blocks.split(",") if b.strip()]
    comps = [float(c) for c in args.compressions.split(",") if c]

    majority = {t: _majority(t, recipe, args.glue_dir) for t in tasks}
    rows = []
    t_start = time.perf_counter()
    for task in tasks:
        for block in blocks:
            for comp in [1.0] + comps:
                ratio = 0.0 if comp == 1.0 else 1.0 - 1.0 / comp
                t0 = time.perf_counter()
                rec = measure(args.model, task, None if comp == 1.0 else block, ratio,
                              args.fidelity, recipe, glue_dir=args.glue_dir, cache=cache)
                row = {"task": task, "metric": rec.metric, "block_shape": block,
                       "nominal_compression": comp, "ratio": round(ratio, 6),
                       "compression": round(rec.compression, 4), "fidelity": args.fidelity,
                       "value": rec.pruned, "dense": rec.dense, "drop": rec.drop,
                       "seconds": round(rec.seconds, 2), "from_cache": rec.from_cache,
                       "dev_examples": rec.dev_examples, "majority": majority[task],
                       "masks_path": rec.masks_path or ""}
                rows.append(row)
                print(f"{task:5s} {block:6s} {comp:4.1f}x  {rec.metric} {rec.pruned:.4f} "
                      f"(dense {rec.dense:.4f}, real {rec.compression:.2f}x) "
                      f"{'cached' if rec.from_cache else f'{time.perf_counter() - t0:.0f} s'}",
                      flush=True)
    wall_s = time.perf_counter() - t_start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / f"{args.name}.csv", rows)
    _write_md(out / f"{args.name}.md", rows, tasks, blocks, comps, recipe, args, wall_s)
    _plot(out / f"{args.name}.png", rows, tasks, blocks, args)
    print(f"wrote {out / args.name}.{{md,csv,png}} in {wall_s:.0f} s")
    return 0


def _majority(task: str, recipe, glue_dir) -> float:
    """Headline metric of always predicting the most frequent dev label (NaN for STS-B)."""
    import numpy as np

    from codesign.glue import compute_metrics, get_task, load_split

    spec = get_task(task)
    if spec.is_regression:
        return float("nan")
    dev = load_split(task, "dev", glue_dir=glue_dir, limit=recipe.eval_examples, seed=recipe.seed)
    mode = np.bincount(dev.labels).argmax()
    return compute_metrics(task, np.full(len(dev), mode), dev.labels)[spec.headline]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _write_md(path: Path, rows, tasks, blocks, comps, recipe, args, wall_s: float) -> None:
    import platform

    fresh = sum(not r["from_cache"] for r in rows)
    lines = [f"# Accuracy vs compression ({args.model}, fidelity {args.fidelity})", "",
             f"Dev-set metric (headline GLUE metric) of the encoder pruned by block shape; 1x is "
             f"the dense fine-tuned model. Wall time {wall_s:.0f} s for {len(rows)} points "
             f"({fresh} measured now, the rest from the cache), {os.cpu_count()} CPU cores, "
             f"{platform.processor() or platform.machine()}.", "",
             f"Recipe: `{json.dumps(recipe.stage_fields(args.fidelity), sort_keys=True)}`", ""]
    header = "| task (metric) | majority class | block | " + \
        " | ".join(["1x"] + [f"{c:g}x" for c in comps]) + " | real compression |"
    lines += [header, "|" + "---|" * (len(comps) + 5)]
    for task in tasks:
        for block in blocks:
            sel = [r for r in rows if r["task"] == task and r["block_shape"] == block]
            vals = " | ".join(f"{r['value']:.3f}" for r in sel)
            real = ", ".join(f"{r['compression']:.2f}" for r in sel[1:])
            lines.append(f"| {task} ({sel[0]['metric']}) | {sel[0]['majority']:.3f} | {block} | "
                         f"{vals} | {real} |")
    lines += ["", "Columns are nominal compressions (block ratio = 1 - 1/c in every encoder "
              "matrix); `real compression` is prunable weights / kept weights of the masks; "
              "`majority class` is the score of always predicting the most frequent dev label."]
    path.write_text("\n".join(lines) + "\n")


def _plot(path: Path, rows, tasks, blocks, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for block in blocks:
            sel = [r for r in rows if r["task"] == task and r["block_shape"] == block]
            ax.plot([r["compression"] for r in sel], [r["value"] for r in sel], marker="o",
                    label=block)
        dense = next(r["dense"] for r in rows if r["task"] == task)
        ax.axhline(dense, color="grey", ls="--", lw=0.8, label="dense")
        maj = next(r["majority"] for r in rows if r["task"] == task)
        if maj == maj:  # not NaN
            ax.axhline(maj, color="black", ls=":", lw=0.8, label="majority class")
        ax.set_title(f"{task} ({args.fidelity})")
        ax.set_xlabel("compression (prunable weights / kept)")
        ax.set_ylabel(f"dev {rows[[r['task'] for r in rows].index(task)]['metric']}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(title="block shape", fontsize=8)
    fig.suptitle(f"{args.model}: measured dev metric vs compression", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
