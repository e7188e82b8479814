"""Multi-fidelity promotion: which (task, block, ratio) configurations get a costlier accuracy.

What is modelled: stage 1 measures every point at a cheap fidelity (oneshot); each later stage
promotes the (task, block, ratio) configurations of the sparse points on (or near) the Pareto
front of the points that fit the board to a more expensive fidelity (retrain, rgl), re-simulates
them on the new masks and stores the new evaluation next to the old one; a point's row shows its
most expensive evaluation and names it. The choice depends only on the cheaper evaluations, so a
re-run promotes exactly the same configurations.

What is ignored: the accuracy constraint does not gate promotion (the costlier fidelity is what
may bring a point within it). Latency-aware points (pruning.allocation) are never promoted: their
masks come from the calibrated allocation only; they count in the front that decides which
uniform configurations are. A PE-balanced configuration is its own: (task, block, ratio,
"balanced"), promoted (and re-measured with balanced masks) on its own merits.
"""
from __future__ import annotations

import math
from typing import Any

from codesign.study import Study
from codesign.study.schema import LATENCY_AWARE
from codesign.sweep.runner import Evaluation, Runner
from codesign.sweep.space import BALANCED, DENSE, DesignPoint, is_balanced

#: (task, block shape text, prune ratio), with "balanced" appended for PE-balanced masks
Config = tuple


def config_of(task: str, block: str, ratio: float, balanced: Any = False) -> Config:
    """The promotion configuration of a record's values (`balanced` as stored)."""
    cfg = (task, block, float(ratio))
    return cfg + (BALANCED,) if is_balanced(balanced) else cfg


def points_by_config(runner: Runner, points: list[DesignPoint]) -> dict[Config, list[DesignPoint]]:
    """The design points of each (task, block, ratio): the grid's points, or for a search the
    points of every stored record."""
    by_config: dict[Config, list[DesignPoint]] = {}
    for p in points:
        if not p.latency_aware:
            by_config.setdefault(p.accuracy_key, []).append(p)
    if runner.study.search.method != "grid":
        for rec in runner.store.records(runner.context):
            p = runner.space.point_of_record(rec)
            group = by_config.setdefault(p.accuracy_key, [])
            if p not in group:
                group.append(p)
    return by_config


def promote(runner: Runner, by_config: dict[Config, list[DesignPoint]]) -> None:
    """Run the later accuracy stages over the promoted configurations' points."""
    study = runner.study
    stages = study.accuracy.stages if study.accuracy.measure else []
    for stage_no, stage in enumerate(stages[1:], start=1):
        recs = runner.store.records(runner.context, below=stage.fidelity)
        chosen = select_promoted(study, recs, how=stage.promote, tolerance=stage.tolerance,
                                 max_configs=stage.max_configs)
        todo = [Evaluation(p, stage.fidelity, stage_no) for cfg in chosen
                for p in by_config.get(cfg, []) if not runner.stored(p, stage.fidelity)]
        if runner.progress:
            runner.progress.note(f"stage {stage_no + 1}: promoting {len(chosen)} "
                                 f"(task, block, ratio) to {stage.fidelity}: {len(todo)} points")
            runner.progress.start(len(todo), 0, f"stage {stage_no + 1} {stage.fidelity}")
        runner.evaluate(todo)
        if runner.progress:
            runner.progress.close()


def select_promoted(study: Study, records: list[dict[str, Any]], *, how: str,
                    tolerance: float, max_configs: int | None) -> list[Config]:
    """(task, block, ratio) of the sparse points on (or within `tolerance`, in objective ranges
    normalised to [0, 1], of) the Pareto front of the points that fit the board, per task;
    nearest first, then the smallest excess over the accuracy-drop limit, then the best first
    objective (so `max_configs` keeps the likeliest to end up feasible and fast)."""
    import numpy as np

    from codesign.pareto import pareto_mask
    from codesign.store import records_frame

    if how == "all":
        cfgs = {config_of(r["task"], r["block_shape"], r["prune_ratio"], r.get("balanced"))
                for r in records if r["block_shape"] != DENSE and r["prune_ratio"] > 0
                and r.get("allocation") != LATENCY_AWARE}
        return sorted(cfgs)[:max_configs] if max_configs else sorted(cfgs)
    if not records:
        return []
    df = records_frame(records)
    objs = study.objective_pairs
    scored: dict[tuple, float] = {}
    limit = study.constraints.max_accuracy_drop
    for task, sub in df.groupby("task", sort=True):
        # candidates must fit the board; the accuracy constraint does not gate promotion, since
        # the more expensive fidelity is what may bring a point within it
        if study.constraints.fits_board:
            sub = sub[sub["fits"].astype(bool)]
        if sub.empty:
            continue
        mask = pareto_mask(sub, objs)
        vals = np.column_stack([sub[m].to_numpy(dtype=float) * (1 if d == "min" else -1)
                                for m, d in objs])
        lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        norm = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)
        front = norm[mask]
        for i, (_, row) in enumerate(sub.iterrows()):
            if row["block_shape"] == DENSE or row["prune_ratio"] <= 0 \
                    or row.get("allocation") == LATENCY_AWARE:
                continue
            if mask[i]:
                dist = 0.0
            elif how == "near-front" and len(front):
                # distance to being non-dominated: how far it is behind the nearest front point
                behind = np.maximum(norm[i] - front, 0.0).max(axis=1)
                dist = float(np.nanmin(behind))
                if not dist <= tolerance:
                    continue
            else:
                continue
            cfg = config_of(task, row["block_shape"], row["prune_ratio"], row.get("balanced"))
            # closest to the accuracy limit first (most likely to become feasible), then the
            # best first objective
            drop = float(row.get("accuracy_drop", math.nan))
            excess = max(0.0, drop - limit) if limit is not None and math.isfinite(drop) else 0.0
            score = (dist, excess, float(norm[i][0]))
            scored[cfg] = min(scored.get(cfg, (math.inf, math.inf, math.inf)), score)
    chosen = sorted(scored, key=lambda c: (scored[c], c))
    return chosen[:max_configs] if max_configs else chosen
