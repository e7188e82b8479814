"""Accuracy of the design points: one measurement per (task, block, ratio, fidelity) per run.

What is modelled: the accuracy and the mask file of a (task, block shape, ratio) at one fidelity,
measured (or served from its cache) by codesign.accuracy and shared by every accelerator choice;
for hardware-only studies (accuracy.measure false) only the one-shot mask file is produced.

Every result carries the 95% dev-set bootstrap interval of the pruned model (`low`, `high`) and of
the dense model (`dense_low`, `dense_high`), NaN when the cached record predates intervals, and
the precision it was measured at: the study's ``accuracy.precision`` (fp32 by default; with
"hardware", the precision of the point's accelerator, `precision_for`), so one measurement per
(task, block, ratio, fidelity, precision).

Where a measurement runs: in the main process (`get`), or, when the executor measures (a local
pool with the cores for it, or dask), on a worker: `ready` serves the memo and the cache, the
main process fine-tunes the dense model once (`shipment`) and the worker's record comes back
through `accept`, the only place its entry and mask file are written (codesign.sweep.remote).

Latency-aware points (`allocated`): masks allocated on the point's own accelerator for its
speedup target (codesign.accuracy.allocated.measure_allocated), one measurement per (task,
block, target, accelerator identity, precision), always in the main process.

PE-balanced points (`pe_columns`, the PE-array width of the point's accelerator): masks
balanced over that many PE columns (codesign.pruning.balance) at the same fidelities, one
measurement per (task, block, ratio, fidelity, precision, pe_columns), on a worker or in the main
process like any uniform point; without `pe_columns` every call is as before.

Seeds (study ``accuracy.seeds``): every measurement above is made once per seed, with the
recipe's `seed` set to it (`recipe_for`), memoised per seed; `_gather` is the one place the seeds
are looped over and combined (codesign.sweep.seeds.aggregate_seeds: means, interval envelopes).
On workers, `missing_seeds` names the seeds still to measure, one `shipment` each, and `ready`
combines them once every seed's `accept` has arrived. Without seeds every call is as before.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hwmodels import BlockShape

from codesign.accuracy.quantize import FP32, accuracy_precision
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
    #: a latency-aware point: the record's `allocation` (spec and what was reached); else {}
    allocation: dict[str, Any] = field(default_factory=dict)
    #: a seeded study (accuracy.seeds): how many seeds the means are over, and the sample
    #: standard deviation of the pruned score over them (codesign.sweep.seeds); 0, NaN: one
    #: measurement, as before
    seeds: int = 0
    std: float = math.nan


class AccuracyProvider:
    """Measures (or looks up) accuracy and mask files; one measurement per key per run."""

    def __init__(self, study: Study, cache=None):
        self.study = study
        self.recipe = Recipe.from_spec(study.accuracy.recipe)
        #: accuracy.seeds (None: one measurement per key at the recipe's seed, as before)
        self.seeds: tuple[int, ...] | None = (tuple(study.accuracy.seeds)
                                              if study.accuracy.seeds else None)
        self._cache = cache
        self._memo: dict[tuple, AccuracyResult] = {}
        self.measured = 0  # how many calls went to codesign.accuracy this run

    def precision_for(self, hardware_precision: str | None) -> str:
        """The precision a point's accuracy is measured at, given its accelerator's precision
        (study ``accuracy.precision``: fp32, "hardware" or one fixed precision); canonical
        (int8 -> w8a8). fp32 when the study does not measure accuracy."""
        mode = self.study.accuracy.precision
        if not self.study.accuracy.measure or mode == FP32:
            return FP32
        return accuracy_precision(hardware_precision if mode == "hardware" else mode)

    def _cache_obj(self):
        if self._cache is None:
            from codesign.accuracy import AccuracyCache

            self._cache = AccuracyCache()
        return self._cache

    def get(self, task: str, block: BlockShape | None, ratio: float,
            fidelity: str, precision: str = FP32, *,
            pe_columns: int | None = None) -> AccuracyResult:
        """The accuracy of (task, block, ratio) at `fidelity` and `precision` (`precision_for`),
        its masks PE-balanced over `pe_columns` when given; a block shape at ratio 0 and the
        dense baseline (block None) share the dense model's accuracy."""
        key = _memo_key(task, block, ratio, fidelity, precision, pe_columns)
        if key not in self._memo:
            pruned = None if block is None or ratio == 0 else block
            if self.study.accuracy.measure:
                self._memo[key] = self._gather(key, lambda recipe: self._measure(
                    task, pruned, ratio, fidelity, precision, pe_columns, recipe=recipe))
            else:
                self._memo[key] = self._masks_only(task, pruned, ratio, pe_columns)
        return self._memo[key]

    def _masks_only(self, task: str, block: BlockShape | None, ratio: float,
                    pe_columns: int | None = None) -> AccuracyResult:
        from codesign import accuracy

        path = None
        if block is not None:
            path = str(accuracy.oneshot_masks(self.study.model.name, task, block, ratio,
                                              self.recipe, glue_dir=self.study.glue_dir,
                                              cache=self._cache_obj(),
                                              **_balance_kw(pe_columns)))
        return AccuracyResult(math.nan, "", math.nan, "none", "none", path,
                              {"masks": path or DENSE})

    # --- seeds (accuracy.seeds): one measurement per seed, combined in one place -------------
    def dense_cached(self, task: str, seed: int | None = None) -> bool:
        """Whether the cache holds `task`'s dense model for this study's recipe (at `seed`);
        nothing is trained."""
        from codesign.accuracy.dense import dense_dir

        return (dense_dir(self.study.model.name, task, self.recipe_for(seed), self._cache_obj())
                / "dense.json").is_file()

    def recipe_for(self, seed: int | None) -> Recipe:
        """The study's recipe, with `seed` set when given (one seed of a seeded study)."""
        return self.recipe if seed is None else dataclasses.replace(self.recipe, seed=int(seed))

    def _per_seed(self, key: tuple, seed: int,
                  measure: Callable[[Recipe], AccuracyResult | None]) -> AccuracyResult | None:
        """One seed's result of the point `key`: `measure(recipe_for(seed))` (None: not
        available), memoised per seed."""
        seed_key = _seed_key(key, seed)
        if seed_key not in self._memo:
            result = measure(self.recipe_for(seed))
            if result is None:
                return None
            self._memo[seed_key] = result
        return self._memo[seed_key]

    def _gather(self, key: tuple,
                measure: Callable[[Recipe], AccuracyResult | None]) -> AccuracyResult | None:
        """The point `key`'s result: unseeded, `measure(recipe)` itself (as before); seeded,
        every seed's (`_per_seed`) combined by codesign.sweep.seeds.aggregate_seeds, or None
        when a seed's result is not available. The one place the seeds are looped over."""
        if self.seeds is None:
            return measure(self.recipe)
        results = [self._per_seed(key, seed, measure) for seed in self.seeds]
        if any(r is None for r in results):
            return None
        from codesign.sweep.seeds import aggregate_seeds

        return aggregate_seeds(results, self.seeds)

    def missing_seeds(self, task: str, block: BlockShape | None, ratio: float, fidelity: str,
                      precision: str = FP32, *,
                      pe_columns: int | None = None) -> list[int | None]:
        """The seeds a worker must measure once `ready` returned None: every seed without a
        result yet ([None] for an unseeded study: its one measurement)."""
        if self.seeds is None:
            return [None]
        key = _memo_key(task, block, ratio, fidelity, precision, pe_columns)
        return [s for s in self.seeds if _seed_key(key, s) not in self._memo]

    def _measure(self, task: str, block: BlockShape | None, ratio: float,
                 fidelity: str, precision: str, pe_columns: int | None = None, *,
                 recipe: Recipe) -> AccuracyResult:
        from codesign import accuracy

        rec = accuracy.measure(self.study.model.name, task, block,
                               0.0 if block is None else ratio,
                               "oneshot" if block is None else fidelity, recipe,
                               glue_dir=self.study.glue_dir, cache=self._cache_obj(),
                               precision=precision, **_balance_kw(pe_columns))
        self.measured += 1
        return _result(rec, block, fidelity)

    def allocated(self, task: str, block: BlockShape, target: float, accelerator: Any,
                  precision: str = FP32) -> AccuracyResult:
        """The accuracy of a latency-aware point: its masks allocated on `accelerator` (an
        hwmodels.Accelerator) for the simulated speedup `target` over its dense run, measured
        at the calibrated fidelity and `precision` (or served from the cache); one measurement
        per accelerator identity. Raises AccuracyError / ValueError (e.g. a target out of
        reach)."""
        from codesign.accuracy.allocated import measure_allocated
        from codesign.pruning.allocation import accelerator_identity

        key = ("latency-aware", task, block, float(target), accelerator_identity(accelerator),
               precision)
        if key not in self._memo:
            model = self.study.model

            def one(recipe: Recipe) -> AccuracyResult:
                rec = measure_allocated(model.name, task, block, accelerator=accelerator,
                                        speedup=target, seq_len=model.seq_len,
                                        batch=model.batch, engine=self.study.hardware.engine,
                                        recipe=recipe, glue_dir=self.study.glue_dir,
                                        cache=self._cache_obj(), precision=precision)
                self.measured += 1
                return _result(rec, block, "calibrated")

            self._memo[key] = self._gather(key, one)
        return self._memo[key]

    # --- measurements on workers (codesign.sweep.remote) ----------------------------------------
    def ready(self, task: str, block: BlockShape | None, ratio: float,
              fidelity: str, precision: str = FP32, *,
              pe_columns: int | None = None) -> AccuracyResult | None:
        """The result without a measurement (memo or cache), or None when a worker could
        measure it (at `precision` and `pe_columns`: the MeasureJob of `shipment` carries
        them); the dense model, masks-only points and studies without accuracy are always
        served here (they cost no training)."""
        key = _memo_key(task, block, ratio, fidelity, precision, pe_columns)
        if key in self._memo or block is None or ratio == 0 or not self.study.accuracy.measure:
            return self.get(task, block, ratio, fidelity, precision, pe_columns=pe_columns)
        from codesign.accuracy.measurement import cached_record

        def cached(recipe: Recipe) -> AccuracyResult | None:
            rec = cached_record(self.study.model.name, task, block, ratio, fidelity, recipe,
                                cache=self._cache_obj(), precision=precision,
                                **_balance_kw(pe_columns))
            return None if rec is None else _result(rec, block, fidelity)

        result = self._gather(key, cached)
        if result is not None:
            self._memo[key] = result
        return result

    def shipment(self, task: str, block: BlockShape, ratio: float, fidelity: str, *,
                 precision: str, pe_columns: int | None = None, seed: int | None = None):
        """(MeasureJob, dense checkpoint, files) of one measurement for a worker at `precision`
        (the point's, `precision_for`; given explicitly so a job never falls back to fp32): the
        dense
        model is fine-tuned here first (once, through the cache); `files` names the cache's
        dense checkpoint and teacher files and the task's GLUE files (roots and relative
        paths), the keywords of the executors' `submit_measurement`. `pe_columns`: the job
        measures PE-balanced masks (None: unbalanced). `seed`: one seed of a seeded study
        (`missing_seeds`; None: the recipe's own)."""
        from codesign.accuracy.cache import block_text, model_sha256
        from codesign.accuracy.dense import dense_checkpoint
        from codesign.glue import resolve_glue_dir
        from codesign.sweep.remote import MeasureJob, cache_relpaths, glue_relpaths

        cache = self._cache_obj()
        model = self.study.model.name
        recipe = self.recipe_for(seed)
        dense = dense_checkpoint(model, task, recipe, glue_dir=self.study.glue_dir, cache=cache)
        glue_root = resolve_glue_dir(self.study.glue_dir)
        job = MeasureJob(model=model, model_sha256=model_sha256(model), task=task,
                         block=block_text(block), ratio=float(ratio), fidelity=fidelity,
                         recipe=recipe, precision=accuracy_precision(precision),
                         pe_columns=pe_columns)
        files = dict(cache_root=cache.root, cache_rels=cache_relpaths(cache.root, dense.path),
                     glue_root=glue_root, glue_rels=glue_relpaths(glue_root, task))
        return job, dense, files

    def accept(self, task: str, block: BlockShape, ratio: float, fidelity: str, remote,
               dense) -> AccuracyResult:
        """Write a worker's measurement (a RemoteMeasurement) into the cache; its result (in a
        seeded study, its seed's: `ready` then combines the seeds once all have arrived)."""
        from codesign.accuracy.measurement import import_measurement

        rec = import_measurement(remote.record, remote.masks_bytes, dense=dense,
                                 cache=self._cache_obj())
        self.measured += 1
        key = _memo_key(task, block, ratio, fidelity, rec.precision,
                        (rec.balance or {}).get("pe_columns"))
        if self.seeds is not None:
            key = _seed_key(key, rec.seed)
        self._memo[key] = _result(rec, block, fidelity)
        return self._memo[key]


def _memo_key(task: str, block: BlockShape | None, ratio: float, fidelity: str,
              precision: str, pe_columns: int | None) -> tuple:
    """One measurement per key in a run: (task, block, ratio, fidelity, precision), with the
    PE columns appended for balanced masks."""
    key = (task, block, ratio, fidelity, precision)
    return key + (int(pe_columns),) if pe_columns else key


def _seed_key(key: tuple, seed: int) -> tuple:
    """The memo key of one seed's result of the point `key` (a seeded study)."""
    return key + ("seed", int(seed))


def _balance_kw(pe_columns: int | None) -> dict[str, Any]:
    """The `balance=` keyword of codesign.accuracy's measurements ({} when unbalanced, so
    those calls stay as they were)."""
    if not pe_columns:
        return {}
    from codesign.pruning.balance import PEBalance

    return {"balance": PEBalance(int(pe_columns))}


def _result(rec, block: BlockShape | None, fidelity: str) -> AccuracyResult:
    """The sweep's view of an AccuracyRecord (block None: the dense model)."""
    masks_path = str(rec.masks_path) if rec.masks_path else None
    prov = {"source": rec.source, "fidelity": rec.fidelity, "recipe": rec.recipe,
            "seconds": rec.seconds, "key": rec.key, "masks_path": masks_path,
            "precision": rec.precision, "dev_examples": rec.dev_examples,
            "interval": "95% percentile bootstrap over the dev examples"}
    allocation = dict(getattr(rec, "allocation", None) or {})
    if allocation:  # a uniform point's provenance is as before
        prov["allocation"] = allocation
    balance = dict(getattr(rec, "balance", None) or {})
    if balance:  # so is an unbalanced point's
        prov["balance"] = balance
    return AccuracyResult(float(rec.pruned), rec.metric, float(rec.dense),
                          rec.fidelity if block is not None else fidelity, rec.source,
                          masks_path if block is not None else None, prov,
                          low=rec.pruned_low, high=rec.pruned_high, dense_low=rec.dense_low,
                          dense_high=rec.dense_high, precision=rec.precision,
                          allocation=allocation)
