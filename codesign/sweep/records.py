"""A design point's record (one points.csv row), its constraints and THE feasibility rule.

What is modelled: the record of an evaluated point joins its parameters, the hardware columns of
codesign.sweep.hardware, the accuracy columns (drop in points: 100 x (dense - pruned)) and a
provenance JSON. Constraints follow optuna's convention (feasible <= 0): the accuracy drop over
the study's limit, and not fitting the board when the study requires it; an unknown accuracy
(hardware-only studies) counts as feasible. `feasible` is the one feasibility rule of the tool.

Uncertainty: `accuracy_low`/`accuracy_high` are the 95% dev-set bootstrap interval of the pruned
model (codesign.glue.bootstrap_interval). The drop's interval `accuracy_drop_low/high` sets that
interval against the dense model's point estimate (codesign.pareto.drop_interval; the dense
model's own noise is not added, and no paired bootstrap is run: the records do not keep the
prediction vectors). Feasibility stays decided on the point estimates; the report says when an
interval straddles the limit. `accuracy_precision` says at which precision it was measured.

A study with latency-aware points labels every row with `allocation` (uniform, latency-aware)
and `speedup_target` (the latency-aware point's target, empty otherwise); a latency-aware row's
`prune_ratio` is the fraction of blocks its allocation removed (over every prunable matrix). A
study with PE-balanced points labels every row with `balanced` (true/false); a balanced row's
provenance names the balance (`balance: {pe_columns: C}`).

A seeded study (`accuracy.seeds`, codesign.sweep.seeds) writes the mean over its seeds in
`accuracy` and `accuracy_dense`, the envelope of the seeds' intervals in `accuracy_low/high`
(so the drop interval above spans them too), and two more columns: `accuracy_seeds` (how many
seeds) and `accuracy_seed_std` (the pruned score's sample standard deviation over them; NaN for
one seed). Its provenance lists the seeds, their scores and cache keys.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

from codesign.pareto import constraint_values, drop_interval
from codesign.study import ResolvedChoice, Study
from codesign.sweep.measurements import AccuracyResult
from codesign.sweep.space import DesignPoint

#: the points.csv columns of a seeded study (accuracy.seeds): how many seeds a point's accuracy
#: is the mean over, and the sample standard deviation of its pruned score over them
SEEDS_COLUMN = "accuracy_seeds"
SEED_STD_COLUMN = "accuracy_seed_std"


def constraints(study: Study, rec: Mapping[str, Any]) -> dict[str, float]:
    """The study's constraints of a record (see `constraint_values`)."""
    return constraint_values(rec, max_accuracy_drop=study.constraints.max_accuracy_drop,
                             fits_board=study.constraints.fits_board)


def feasible(study: Study, rec: Mapping[str, Any]) -> bool:
    """Whether a record meets every constraint of the study: THE feasibility rule."""
    return all(c <= 0 for c in constraints(study, rec).values())


def objective_values(study: Study, rec: Mapping[str, Any]) -> list[float]:
    """The record's objective values in the study's order (NaN when missing)."""
    out = []
    for o in study.objectives:
        v = rec.get(o.metric)
        out.append(math.nan if v is None else float(v))
    return out


def build_record(study: Study, point: DesignPoint, *, resolved: ResolvedChoice,
                 acc: AccuracyResult, hwres: Mapping[str, Any], stage: int) -> dict[str, Any]:
    """The points.csv row of one evaluation (the column order is the table's)."""
    rec: dict[str, Any] = {"point_id": point.point_id, "task": point.task,
                           "model": study.model.name, "seq_len": study.model.seq_len,
                           "batch": study.model.batch, "board": study.hardware.board}
    rec.update(point.params())
    if point.latency_aware:  # the fraction of blocks its allocation removed
        rec["prune_ratio"] = round(1.0 - float(acc.allocation["block_density"]), 6)
    rec["sparse_strategy"] = point.sparse_strategy
    rec.update({k: v for k, v in hwres.items() if k != "hw_source"})
    drop = 100.0 * (acc.dense - acc.accuracy) if math.isfinite(acc.accuracy) else math.nan
    # the dense model at fp32 is the reference itself; quantized, it has a drop of its own
    fp32 = str(acc.precision or "fp32") == "fp32"
    drop_low, drop_high = drop_interval(
        acc.dense, acc.low, acc.high,
        dense_model=(point.block is None or point.prune_ratio == 0) and fp32)
    rec.update({"accuracy": acc.accuracy, "accuracy_low": acc.low, "accuracy_high": acc.high})
    if study.accuracy.seeds:  # a seeded study only: studies without seeds keep their columns
        rec.update({SEEDS_COLUMN: acc.seeds, SEED_STD_COLUMN: acc.std})
    rec.update({"accuracy_metric": acc.metric, "accuracy_dense": acc.dense,
                "accuracy_drop": drop, "accuracy_drop_low": drop_low,
                "accuracy_drop_high": drop_high, "accuracy_fidelity": acc.fidelity,
                "accuracy_source": acc.source, "accuracy_precision": acc.precision,
                "hw_source": hwres["hw_source"], "stage": stage})
    rec["provenance"] = json.dumps({"accuracy": acc.provenance,
                                    "hardware": {"source": hwres["hw_source"],
                                                 "board": study.hardware.board,
                                                 "overrides": resolved.overrides}},
                                   sort_keys=True, default=str)
    rec["feasible"] = feasible(study, rec)
    return rec


class BestTracker:
    """The best feasible value of the study's first objective so far, as a short text."""

    def __init__(self, study: Study):
        self.objective = study.objectives[0]
        self.value: float | None = None
        self.text = ""

    def note(self, rec: Mapping[str, Any]) -> None:
        if not rec.get("feasible"):
            return
        v = rec.get(self.objective.metric)
        if v is None or not math.isfinite(v):
            return
        if self.value is None or (v < self.value if self.objective.direction == "min"
                                  else v > self.value):
            self.value = v
            self.text = (f"{self.objective.metric}={v:.4g} ({rec['block_shape']} "
                         f"x{rec['compression']:.2f} {rec.get('array', '')} "
                         f"{rec.get('dataflow', '')} {rec['sparse_strategy']})")
