"""A design point's accuracy over several training seeds (study key ``accuracy.seeds``).

What is modelled: a seeded study measures each accuracy once per seed, the study's recipe with
`seed` set to that seed (codesign.accuracy.Recipe.seed is a shared field: each seed has its own
dense fine-tuned model, its own seeded training, calibration and dev samples). `aggregate_seeds`
turns the per-seed results into the point's one result: the accuracy is the mean of the seeds'
pruned scores, the dense reference the mean of their dense scores (so the drop is the mean of
the per-seed drops), and each interval the envelope [min of the seeds' lows, max of their highs]
of their 95% dev-set bootstrap intervals: a deliberately conservative interval that covers the
dev-set sampling and the training noise together. `std` is the sample standard deviation of the
pruned score over the seeds (NaN for one seed).

What is ignored: the seeds' masks differ (each seed prunes its own dense model); the point's
mask file, and so its simulated latency and energy, is the first seed's. An interval of a seed
that is unknown (NaN: a record measured before intervals existed) makes the envelope unknown.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

#: the provenance's description of a seeded point's interval
ENVELOPE = "envelope of the seeds' 95% percentile bootstrap intervals over the dev examples"


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _envelope(lows: Sequence[float], highs: Sequence[float]) -> tuple[float, float]:
    """[min of lows, max of highs]; NaN, NaN when any end is unknown."""
    if not all(math.isfinite(x) for x in (*lows, *highs)):
        return math.nan, math.nan
    return min(lows), max(highs)


def aggregate_seeds(results: Sequence[Any], seeds: Sequence[int]) -> Any:
    """The point's result from `results` (codesign.sweep.measurements.AccuracyResult values,
    not imported here: that module imports this one), one per seed of `seeds` (same order):
    means, interval envelopes, the seed count and the sample standard deviation (see the
    module docstring).
    The metric, fidelity, source, precision, allocation and mask file are the first seed's."""
    if not results or len(results) != len(seeds):
        raise ValueError(f"aggregate_seeds: {len(results)} result(s) for {len(seeds)} seed(s); "
                         "give one result per seed")
    first = results[0]
    pruned = [float(r.accuracy) for r in results]
    low, high = _envelope([r.low for r in results], [r.high for r in results])
    dense_low, dense_high = _envelope([r.dense_low for r in results],
                                      [r.dense_high for r in results])
    provenance = {**first.provenance, "seeds": [int(s) for s in seeds],
                  "seed_accuracy": pruned, "seed_dense": [float(r.dense) for r in results],
                  "seed_keys": [r.provenance.get("key") for r in results],
                  "seconds": math.fsum(float(r.provenance.get("seconds") or 0.0)
                                       for r in results),
                  "interval": ENVELOPE, "masks_seed": int(seeds[0])}
    return dataclasses.replace(
        first, accuracy=_mean(pruned), dense=_mean([float(r.dense) for r in results]),
        low=low, high=high, dense_low=dense_low, dense_high=dense_high, provenance=provenance,
        seeds=len(results), std=statistics.stdev(pruned) if len(pruned) > 1 else math.nan)
