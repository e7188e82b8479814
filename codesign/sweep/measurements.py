"""Accuracy of the design points: one measurement per (task, block, ratio, fidelity) per run.

What is modelled: the accuracy and the mask file of a (task, block shape, ratio) at one fidelity,
measured (or served from its cache) by codesign.accuracy and shared by every accelerator choice;
for hardware-only studies (accuracy.measure false) only the one-shot mask file is produced.

Every result carries the 95% dev-set bootstrap interval of the pruned model (`low`, `high`) and of
the dense model (`dense_low`, `dense_high`), NaN when the cached record predates intervals, and
the precision it was measured at.

What is ignored: measurements are not distributed (they run in the main process, one at a time,
while the workers simulate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwmodels import BlockShape

from codesign.accuracy.recipe import Recipe
from codesign.study import Study
from codesign.sweep.space import DENSE


@dataclass(frozen=True)
class AccuracyResult:
    """The accuracy of one (task, block, ratio) at one fidelity, with its mask file."""

    accuracy: float
    metric: str
    dense: float
    fidelity: str
    source: str
    masks_path: str | None
    provenance: dict[str, Any]
    low: float = math.nan  # 95% bootstrap interval of `accuracy` over the dev set
    high: float = math.nan
    dense_low: float = math.nan  # the dense model's own interval
    dense_high: float = math.nan
    precision: str = ""  # numeric precision of the measurement ("fp32"); "" when not measured


class AccuracyProvider:
    """Measures (or looks up) accuracy and mask files; one measurement per key per run."""

    def __init__(self, study: Study, cache=None):
        self.study = study
        self.recipe = Recipe.from_spec(study.accuracy.recipe)
        self._cache = cache
        self._memo: dict[tuple, AccuracyResult] = {}
        self.measured = 0  # how many calls went to codesign.accuracy this run

    def _cache_obj(self):
        if self._cache is None:
            from codesign.accuracy import AccuracyCache

            self._cache = AccuracyCache()
        return self._cache

    def get(self, task: str, block: BlockShape | None, ratio: float,
            fidelity: str) -> AccuracyResult:
        """The accuracy of (task, block, ratio) at `fidelity`; a block shape at ratio 0 and the
        dense baseline (block None) share the dense model's accuracy."""
        key = (task, block, ratio, fidelity)
        if key not in self._memo:
            pruned = None if block is None or ratio == 0 else block
            if self.study.accuracy.measure:
                self._memo[key] = self._measure(task, pruned, ratio, fidelity)
            else:
                self._memo[key] = self._masks_only(task, pruned, ratio)
        return self._memo[key]

    def _masks_only(self, task: str, block: BlockShape | None, ratio: float) -> AccuracyResult:
        from codesign import accuracy

        path = None
        if block is not None:
            path = str(accuracy.oneshot_masks(self.study.model.name, task, block, ratio,
                                              self.recipe, glue_dir=self.study.glue_dir,
                                              cache=self._cache_obj()))
        return AccuracyResult(math.nan, "", math.nan, "none", "none", path,
                              {"masks": path or DENSE})

    def _measure(self, task: str, block: BlockShape | None, ratio: float,
                 fidelity: str) -> AccuracyResult:
        from codesign import accuracy

        rec = accuracy.measure(self.study.model.name, task, block,
                               0.0 if block is None else ratio,
                               "oneshot" if block is None else fidelity, self.recipe,
                               glue_dir=self.study.glue_dir, cache=self._cache_obj())
        self.measured += 1
        masks_path = str(rec.masks_path) if rec.masks_path else None
        prov = {"source": rec.source, "fidelity": rec.fidelity, "recipe": rec.recipe,
                "seconds": rec.seconds, "key": rec.key, "masks_path": masks_path,
                "precision": rec.precision, "dev_examples": rec.dev_examples,
                "interval": "95% percentile bootstrap over the dev examples"}
        return AccuracyResult(float(rec.pruned), rec.metric, float(rec.dense),
                              rec.fidelity if block is not None else fidelity, rec.source,
                              masks_path if block is not None else None, prov,
                              low=rec.pruned_low, high=rec.pruned_high, dense_low=rec.dense_low,
                              dense_high=rec.dense_high, precision=rec.precision)
