"""Fidelities checked against each other: do the cheap ones rank (block, compression) points as
the expensive one does?

For each task, every block shape at each compression (block ratio = 1 - 1/compression) is
measured with each fidelity variant through `codesign.accuracy.measure` (so every point lands in
the accuracy cache and a re-run is free; an interrupted run resumes), and the script prints, per
task, one row per point: the score of each variant with its 95% bootstrap interval, the drop
from dense in points and the seconds the measurement took; then the rank agreement (Kendall's
tau-b, scipy.stats.kendalltau) of each cheaper variant with the last (most expensive) one over
the task's points. Variants (cheapest first):

* ``oneshot``     block-magnitude pruning, evaluate (the seed-faithful baseline);
* ``calibrated``  OBS-proxy block saliency + layer-wise least-squares re-fit (no labels);
* ``retrain-mag`` masked retraining from the magnitude masks (plain cross-entropy);
* ``retrain``     masked retraining from the calibrated weights, distilled from the dense model.

What is ignored: seeds (one seed per point; the interval is over the dev set only), and the
hardware: this is the accuracy axis alone. Writes benchmarks/out/NAME.{md,csv}.

    python benchmarks/bench_fidelity.py                                  # SST-2 + STS-B
    python benchmarks/bench_fidelity.py --tasks sst2 --blocks 16x16,1x16 --compressions 2
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere
from bench_options import OUT, add_measurement_options, use_threads  # noqa: E402
# name -> (fidelity, recipe overrides on top of the base recipe)
VARIANTS = {
    "oneshot": ("oneshot", {}),
    "calibrated": ("calibrated", {}),
    "retrain-mag": ("retrain", {"retrain_start": "magnitude", "distill": False}),
    "retrain": ("retrain", {"retrain_start": "calibrated", "distill": True}),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="sst2,stsb")
    ap.add_argument("--blocks", default="1x16,4x4,16x16,32x32,256x1",
                    help="the headline study's block shapes by default")
    ap.add_argument("--compressions", default="1.5,2,3")
    ap.add_argument("--variants", default="oneshot,calibrated,retrain",
                    help=f"cheapest first; the last is the reference ({', '.join(VARIANTS)})")
    add_measurement_options(ap)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--name", default="fidelity_bench")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants {','.join(unknown)}: choose from {', '.join(VARIANTS)}")

    from codesign.accuracy import AccuracyCache, Recipe, measure
    from codesign.cli.accuracy import _parse_recipe_overrides
    from codesign.glue import get_task

    base = _parse_recipe_overrides(tuple(args.recipe))
    cache = AccuracyCache(args.cache)
    tasks = [get_task(t).name for t in args.tasks.split(",") if t]
    blocks = [b for b in args.blocks.split(",") if b]
    comps = [float(c) for c in args.compressions.split(",") if c]
    rows, t_start = [], time.perf_counter()
    use_threads(args.threads)
    for task in tasks:
        for block in blocks:
            for comp in comps:
                for name in variants:
                    fidelity, extra = VARIANTS[name]
                    recipe = Recipe.from_dict({**base, **extra})
                    rec = measure(args.model, task, block, prune_ratio(comp), fidelity, recipe,
                                  glue_dir=args.glue_dir, cache=cache)
                    rows.append(_row(task, block, comp, name, rec))
                    print(_line(rows[-1]), flush=True)
    wall_s = time.perf_counter() - t_start
    text = _report(rows, tasks, variants, wall_s, base)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text + "\n")
    with open(out / f"{args.name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out / args.name}.{{md,csv}}")
    return 0


def prune_ratio(compression: float) -> float:
    """1 - 1/compression, rounded as a study rounds it (codesign.study's PruningSpec.ratios), so
    the points a study measured are served from the cache here and the other way round."""
    return round(1.0 - 1.0 / compression, 6)


def _row(task: str, block: str, comp: float, variant: str, rec) -> dict:
    return {"task": task, "metric": rec.metric, "block": block, "compression": comp,
            "variant": variant, "fidelity": rec.fidelity, "value": rec.pruned,
            "low": rec.pruned_low, "high": rec.pruned_high, "dense": rec.dense,
            "drop_points": 100.0 * rec.drop, "seconds": round(rec.seconds, 1),
            "from_cache": rec.from_cache, "device": rec.device}


def _line(r: dict) -> str:
    took = "cached" if r["from_cache"] else f"{r['seconds']:.0f} s"
    return (f"{r['task']:5s} {r['block']:6s} {r['compression']:3g}x {r['variant']:11s} "
            f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] drop {r['drop_points']:+.1f} "
            f"{took}")


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two score lists over the same points (NaN when undefined)."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return math.nan
    return float(kendalltau(a, b).statistic)


def _report(rows: list[dict], tasks: list[str], variants: list[str], wall_s: float,
            base: dict) -> str:
    fresh = sum(not r["from_cache"] for r in rows)
    lines = [f"# Fidelities side by side ({os.cpu_count()} CPU cores, "
             f"{platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end)", "",
             f"{len(rows)} measurements ({fresh} made now, {wall_s:.0f} s wall), recipe "
             f"overrides {base or 'none'}; each cell: dev score [95% bootstrap interval], drop "
             f"from dense in points, seconds of the measurement.", ""]
    ref = variants[-1]
    for task in tasks:
        trows = [r for r in rows if r["task"] == task]
        if not trows:
            continue
        lines += [f"## {task} ({trows[0]['metric']}, dense {trows[0]['dense']:.3f})", "",
                  "| block | compression | " + " | ".join(variants) + " |",
                  "|---|---|" + "---|" * len(variants)]
        points = sorted({(r["block"], r["compression"]) for r in trows},
                        key=lambda p: (p[1], p[0]))
        score = {(r["block"], r["compression"], r["variant"]): r for r in trows}
        for block, comp in points:
            cells = []
            for v in variants:
                r = score[(block, comp, v)]
                cells.append(f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] "
                             f"{r['drop_points']:+.1f} ({r['seconds']:.0f} s)")
            lines.append(f"| {block} | {comp:g}x | " + " | ".join(cells) + " |")
        reference = [score[(b, c, ref)]["value"] for b, c in points]
        taus = [f"{v} {kendall_tau([score[(b, c, v)]['value'] for b, c in points], reference):.2f}"
                for v in variants[:-1]]
        lines += ["", f"Kendall tau-b against `{ref}` over {len(points)} points: "
                  + (", ".join(taus) or "(one variant only)"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
