"""Latency-aware pruning of a model: the saliency of every block, the allocation to a simulated
latency target (`codesign.pruning.allocation.allocate`, which holds the search and its model),
then the calibrated re-fit of the kept weights (`codesign.pruning.calibrate.calibrate_masks`)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwmodels.costs import CostTable

from codesign.pruning.allocation import Allocation, allocate, default_min_density


@dataclass(frozen=True)
class LatencyAwarePruning:
    """`latency_aware_prune`'s outcome: the allocation, the re-fit, the saliency it used."""

    allocation: Allocation
    fit: object  # calibrate.CalibratedPruning
    saliency: object  # calibrate.BlockSaliency, or fisher.FisherSaliency
    importance: str  # "relative" (saliency / output energy) or "raw"
    seconds: dict[str, float]


def allocation_importance(saliency: Any, importance: str) -> dict[str, np.ndarray]:
    """The per-block importance `allocate` ranks by: a `fisher.FisherSaliency`'s scores as they
    are (units of the task loss); a `saliency.BlockSaliency`'s relative to each matrix's output
    energy (`importance="relative"`) or as they are ("raw")."""
    from codesign.pruning.fisher import FisherSaliency

    _check_importance(importance)
    if importance == "raw" or isinstance(saliency, FisherSaliency):
        return saliency.scores
    return saliency.relative()


def _check_importance(importance: str) -> None:
    if importance not in ("relative", "raw"):
        raise ValueError(f"importance {importance!r}: use relative or raw")


def latency_aware_prune(model, structure, *, table: CostTable, calibration,
                        latency_ms: float | None = None, speedup: float | None = None,
                        saliency: str = "fisher", importance: str = "relative",
                        damping: float = 0.01, refit_bias: bool = True,
                        min_density: float | None = None, fisher_examples: int | None = None,
                        threads: int | None = None) -> LatencyAwarePruning:
    """Saliency of every block on the dense model, allocation to the target (`allocate`),
    then the calibrated re-fit of the kept weights for those masks (`calibrate.calibrate_masks`),
    in place. `saliency="fisher"` (the default): `fisher.fisher_scores`, in units of the task
    loss, so comparable across matrices and used as they are (`importance` is not read);
    "obs" or "norm": `calibrate.block_saliency`, which `importance` "relative" divides by each
    matrix's output energy (comparable across matrices: an estimate) and "raw" leaves as it is.
    `min_density`: the fraction of its blocks every matrix keeps at least (`allocate`; None:
    `allocation.default_min_density(saliency)`). `fisher_examples`: the Fisher scores read the
    first that many calibration sentences (None: all). The table's matrix names must be the model's
    parameter names."""
    from codesign.pruning.calibrate import block_saliency, calibrate_masks
    from codesign.pruning.fisher import fisher_scores

    _check_importance(importance)  # before any work
    t0 = time.perf_counter()
    if saliency == "fisher":
        sal = fisher_scores(model, structure, block_shape=tuple(table.block_shape),
                            calibration=calibration, examples=fisher_examples, threads=threads)
        importance = "raw"
    else:
        sal = block_saliency(model, structure, block_shape=tuple(table.block_shape),
                             calibration=calibration, saliency=saliency, damping=damping,
                             threads=threads)
    scores = allocation_importance(sal, importance)
    t1 = time.perf_counter()
    alloc = allocate(table, scores, latency_ms=latency_ms, speedup=speedup,
                     min_density=default_min_density(saliency) if min_density is None
                     else min_density)
    t2 = time.perf_counter()
    fit = calibrate_masks(model, structure, masks=alloc.masks, calibration=calibration,
                          damping=damping, refit_bias=refit_bias, threads=threads)
    seconds = {"saliency": t1 - t0, "allocation": t2 - t1, "refit": time.perf_counter() - t2}
    return LatencyAwarePruning(allocation=alloc, fit=fit, saliency=sal, importance=importance,
                               seconds=seconds)


__all__ = ["LatencyAwarePruning", "allocation_importance", "latency_aware_prune"]
