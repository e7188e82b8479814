"""Latency-aware points: masks allocated on one accelerator, then measured like a calibrated point.

What is modelled: `measure_allocated` prunes the cached dense fine-tuned model with
`codesign.pruning.latency_aware.latency_aware_prune` (the calibrated fidelity's calibration
sentences and saliency, the allocation of blocks to a simulated speedup over the same
accelerator's dense run, the least-squares re-fit of the kept weights), optionally
fake-quantizes it, evaluates it on the dev split and caches the record and its mask file. The
masks depend on the accelerator, so its identity, the speedup target, the simulated workload
and the engine enter the cache key (`allocation_spec`, `allocation_key`); the record's
`allocation` names them and what the allocation reached.

What is ignored: retraining (only the calibrated fidelity makes latency-aware points); plain
values only (an hwmodels.Accelerator, numbers): no study type is read here. No torch import at
module level.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from codesign.accuracy.cache import AccuracyCache, AccuracyRecord, model_sha256
from codesign.accuracy.dense import dense_checkpoint, dev_split, device_of, evaluate_dev, utc_now
from codesign.accuracy.fidelities import calibration_batches, quantize_loaded
from codesign.accuracy.measurement import (_masks_metadata, _precision, _record_recipe,
                                           _resolve_point, _save_masks_atomic,
                                           uncommitted_removed)
from codesign.accuracy.quantize import FP32
from codesign.accuracy.recipe import AccuracyError, Recipe
from codesign.glue import get_task
from codesign.masks import mask_statistics
from hwmodels import BlockShape


def allocation_spec(accelerator: Any, *, speedup: float, seq_len: int, batch: int,
                    engine: str = "analytical", saliency: str = "obs") -> dict[str, Any]:
    """What makes a latency-aware point's masks besides the model, task, block shape and recipe:
    the speedup target over the same accelerator's dense run, the accelerator's identity
    (`codesign.pruning.allocation.accelerator_identity`), the simulated workload (sequence
    length, batch), the engine, the importance and per-matrix floor `saliency` (the recipe's
    calib_saliency) takes, and the version of the search. Plain JSON values (hashed)."""
    from codesign.pruning.allocation import (ALLOCATION_VERSION, accelerator_identity,
                                             default_min_density)

    try:
        speedup = float(speedup)
    except (TypeError, ValueError):
        raise AccuracyError(f"speedup {speedup!r}: a number above 1") from None
    if not speedup > 1.0:
        raise AccuracyError(f"speedup {speedup}: must be above 1 (a speedup over the dense run)")
    return {"method": "latency-aware", "speedup": round(speedup, 6),
            "accelerator": accelerator_identity(accelerator), "seq_len": int(seq_len),
            "batch": int(batch), "engine": str(engine),
            "importance": "fisher" if saliency == "fisher" else "relative",
            "min_density": default_min_density(saliency), "version": ALLOCATION_VERSION}


def allocation_key(model_sha: str, task: str, block: str, recipe: Recipe, precision: str,
                   spec: Mapping[str, Any]) -> str:
    """The cache key of a latency-aware point: as `record_key` of the calibrated fidelity, with
    the allocation `spec` in place of the ratio (so it never collides with a uniform key)."""
    from codesign.hashing import short_hash

    hashed = {"model": model_sha, "task": get_task(task).name, "block": block,
              "fidelity": "calibrated", "recipe": recipe.hash("calibrated"),
              "allocation": dict(spec)}
    hashed.update(recipe.quant_fields(precision))
    return short_hash(hashed, n=24)


def _allocated_prune(loaded: Any, block: BlockShape, recipe: Recipe, task: str, glue_dir: Any,
                     *, accelerator: Any, speedup: float, seq_len: int, batch: int,
                     engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latency-aware calibrated pruning of `loaded.model` in place: the calibrated fidelity's
    calibration sentences, block saliency, allocation to `speedup` on `accelerator`
    (`codesign.pruning.latency_aware.latency_aware_prune`) and the least-squares re-fit; the
    masks and a summary of the allocation."""
    from hwmodels.costs import build_costs

    from codesign.pruning.latency_aware import latency_aware_prune
    from codesign.workload import encoder_workload

    batches = calibration_batches(loaded, recipe, task, glue_dir)
    names = [n for n, _, _ in loaded.structure.prunable(loaded.model)]
    workload = encoder_workload(loaded.model.config.to_dict(), seq_len, batch, mask_names=names)
    table = build_costs(workload, accelerator, block, engine=engine)
    done = latency_aware_prune(loaded.model, loaded.structure, table=table, calibration=batches,
                               speedup=speedup, saliency=recipe.calib_saliency,
                               damping=recipe.calib_damping,
                               fisher_examples=recipe.calib_fisher_examples)
    a = done.allocation
    summary = {"accelerator_name": accelerator.name, "target_ms": a.target_ms,
               "latency_ms": a.latency_ms, "dense_ms": a.dense_ms, "speedup_reached": a.speedup,
               "block_density": a.block_density, "moves": a.moves, "trimmed": a.trimmed,
               "swaps": a.swaps, "removed_importance": a.removed_importance,
               "total_importance": a.total_importance, "seconds": done.seconds}
    return a.masks, summary


def measure_allocated(model: str, task: str, block_shape: Any, *, accelerator: Any,
                      speedup: float, seq_len: int, batch: int, engine: str = "analytical",
                      recipe: Recipe | None = None, glue_dir: Any = None,
                      cache: AccuracyCache | None = None,
                      precision: str = FP32) -> AccuracyRecord:
    """Measure (or serve from the cache) a latency-aware point: the dense fine-tuned model
    pruned by `_allocated_prune` so that its simulated latency on `accelerator` (an
    hwmodels.Accelerator) for `seq_len` x `batch` is the dense run's / `speedup` or less, then
    (at `precision`) evaluated on the dev split. The record's fidelity is ``calibrated``, its
    `ratio` the fraction of blocks the allocation removed and its `allocation` the spec and
    what was reached; its key is `allocation_key`. `measure` is left as it was."""
    recipe = Recipe() if recipe is None else recipe
    task, block, _, _ = _resolve_point(task, block_shape, 0.0, "calibrated")
    if block is None:
        raise AccuracyError("a latency-aware point needs a block shape (e.g. 16x16)")
    precision = _precision(precision)
    spec = allocation_spec(accelerator, speedup=speedup, seq_len=seq_len, batch=batch,
                           engine=engine, saliency=recipe.calib_saliency)
    cache = AccuracyCache() if cache is None else cache
    sha = model_sha256(model)
    key = allocation_key(sha, task, block, recipe, precision, spec)
    hit = cache.get(key)
    if hit is not None:
        return hit
    from codesign.checkpoints import load_model

    dense = dense_checkpoint(model, task, recipe, glue_dir=glue_dir, cache=cache)
    t0 = time.perf_counter()
    masks_path = (cache.masks_dir /
                  f"{task}-{block}-s{spec['speedup']:g}-latency-aware-{key}.safetensors")
    with uncommitted_removed(masks_path):
        loaded = load_model(dense.path, task=task)
        masks, summary = _allocated_prune(
            loaded, BlockShape.parse(block), recipe, task, glue_dir, accelerator=accelerator,
            speedup=spec["speedup"], seq_len=seq_len, batch=batch, engine=engine)
        quantize_loaded(loaded, precision, recipe, task, glue_dir)
        metrics = evaluate_dev(loaded.model, loaded.tokenizer, task,
                               dev_split(task, recipe, glue_dir), recipe)
        ratio = round(1.0 - summary["block_density"], 6)
        allocation = {**spec, **summary}
        _save_masks_atomic(masks_path, masks,
                           {**_masks_metadata(dense, loaded, block, ratio, "calibrated", masks),
                            "allocation": allocation})
        record = AccuracyRecord(
            task=task, metric=dense.metric, dense=dense.score, pruned=metrics[dense.metric],
            metrics=metrics, fidelity="calibrated",
            recipe=_record_recipe(recipe, "calibrated", precision),
            seconds=time.perf_counter() - t0, masks_path=str(masks_path), key=key, model=model,
            model_sha256=sha, block_shape=block, ratio=ratio, seed=recipe.seed,
            dense_metrics=dense.metrics, dense_seconds=dense.seconds,
            dense_checkpoint=str(dense.path), density=mask_statistics(masks).density,
            dev_examples=dense.dev_examples, device=device_of(loaded.model), created=utc_now(),
            precision=precision, allocation=allocation)
        cache.put(record)
        return record


__all__ = ["allocation_key", "allocation_spec", "measure_allocated"]
