"""Measuring one design point: prune the cached dense model by a fidelity's procedure, evaluate
it on the dev split, and cache the record and its mask file.

The procedure of each fidelity (``oneshot``, ``calibrated``, ``retrain``, ``rgl``), distillation,
PE balance and fake quantization: `codesign.accuracy.fidelities`. Here: the key, the cache
lookup, the dense reference, the dev evaluation, the record and its mask file.

``ratio == 0`` is the dense fine-tuned model itself, whatever the block shape and fidelity.

The dev split's sampling noise is a bootstrap interval on the record (`evaluate_dev`); the noise
of training (seed, sampled subsets) is not (a study measures it with `accuracy.seeds`,
codesign.sweep.seeds). The mask file is written before the record, and removed if the record is
not committed, so an interrupted measurement leaves nothing behind. No torch import at module
level.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codesign.accuracy.cache import (AccuracyCache, AccuracyRecord, atomic_file, balance_fields,
                                     block_text, model_sha256, record_key)
from codesign.accuracy.dense import (DenseCheckpoint, dense_checkpoint, dev_split, device_of,
                                     evaluate_dev, utc_now)
from codesign.accuracy.fidelities import prune_at_fidelity, quantize_loaded
from codesign.accuracy.quantize import FP32, accuracy_precision
from codesign.accuracy.recipe import AccuracyError, Recipe, check_fidelity
from codesign.glue import get_task
from codesign.masks import mask_statistics, save_masks
from hwmodels import BlockShape


def _masks_metadata(dense: DenseCheckpoint, loaded: Any, block: str, ratio: float, method: str,
                    masks: Mapping[str, Any]) -> dict[str, Any]:
    """A pruned point's mask-file metadata: its dense source, method, ratio and matrix roles."""
    roles = {}
    for name, layer, role in loaded.structure.prunable(loaded.model):
        if name in masks:
            roles[name] = [layer, role]
    # save_masks adds format, block_shape and matrix_shapes itself
    return {"source_checkpoint": str(dense.path), "source_sha256": loaded.sha256,
            "method": method, "ratio": ratio, "roles": roles, "task": dense.task,
            "base_model": dense.model, "base_sha256": dense.model_sha256}


def _save_masks_atomic(path: Path, masks: Mapping[str, Any], metadata: dict[str, Any]) -> Path:
    """Write a mask file under a temporary name, then move it into place."""
    with atomic_file(path) as tmp:
        save_masks(tmp, dict(masks), metadata)
    return path


@contextmanager
def uncommitted_removed(masks_path: Path) -> Iterator[Path]:
    """The mask file of a measurement being made: removed if the block raises (or is
    interrupted) before its record is in the cache, so the cache never holds an orphan."""
    try:
        yield masks_path
    except BaseException:
        masks_path.unlink(missing_ok=True)
        raise


def _precision(precision: Any) -> str:
    """The canonical precision of a measurement, or a one-line AccuracyError."""
    try:
        return accuracy_precision(precision)
    except ValueError as err:
        raise AccuracyError(str(err)) from None


def _resolve_point(task: str, block_shape: Any, ratio: float,
                   fidelity: str) -> tuple[str, str | None, float, str]:
    """(task name, block text or None, ratio, fidelity) checked, or a one-line AccuracyError."""
    spec = get_task(task)
    fidelity = check_fidelity(fidelity)
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise AccuracyError(f"ratio {ratio!r}: a number in [0, 1)") from None
    if not 0.0 <= ratio < 1.0:
        raise AccuracyError(f"ratio {ratio}: the fraction of blocks pruned must be in [0, 1)")
    block = block_text(block_shape)
    if block is None and ratio > 0:
        raise AccuracyError(f"ratio {ratio} needs a block shape (e.g. --block 16x16; 1x1 = "
                            "unstructured)")
    return spec.name, block, ratio, fidelity


def measure(model: str, task: str, block_shape: Any, ratio: float, fidelity: str = "retrain",
            recipe: Recipe | None = None, *, glue_dir: Any = None,
            cache: AccuracyCache | None = None, progress: bool = False,
            precision: str = FP32, balance: Any = None) -> AccuracyRecord:
    """Measure (or serve from the cache) the dev metric of `model` pruned at one point.

    `block_shape`: "16x16" or (16, 16) in the parameter orientation (rows = output features);
    None only with ratio 0 (the dense model). `cache=None` uses the default cache location.
    `precision`: fp32 (as before) or a hardware precision the model is fake-quantized at.
    `balance`: PE-balanced masks (a PEBalance; None: as before; ignored at ratio 0).
    """
    recipe = Recipe() if recipe is None else recipe
    task, block, ratio, fidelity = _resolve_point(task, block_shape, ratio, fidelity)
    precision = _precision(precision)
    cache = AccuracyCache() if cache is None else cache
    sha = model_sha256(model)
    balanced = balance_fields(balance) if ratio > 0 else None
    key = record_key(sha, task, block, ratio, fidelity, recipe, precision, balanced)
    hit = cache.get(key)
    if hit is not None:
        return hit
    dense = dense_checkpoint(model, task, recipe, glue_dir=glue_dir, cache=cache,
                             progress=progress)
    t0 = time.perf_counter()
    common = dict(task=task, metric=dense.metric, dense=dense.score, fidelity=fidelity,
                  recipe=_record_recipe(recipe, fidelity, precision), key=key, model=model,
                  model_sha256=sha,
                  block_shape=block, ratio=ratio, seed=recipe.seed, dense_metrics=dense.metrics,
                  dense_seconds=dense.seconds, dense_checkpoint=str(dense.path),
                  dev_examples=dense.dev_examples, created=utc_now(), precision=precision)
    if ratio == 0.0:
        record = _dense_record(dense, recipe, precision, task, glue_dir, t0, common)
        cache.put(record)
        return record
    from codesign.checkpoints import load_model

    masks_path = cache.masks_dir / _masks_name(task, block, ratio, fidelity, key, balanced)
    with uncommitted_removed(masks_path):
        loaded = load_model(dense.path, task=task)
        recovery: dict[str, Any] = {}
        masks = prune_at_fidelity(fidelity, loaded, BlockShape.parse(block), ratio, recipe,
                                  task, glue_dir, progress, dense=dense, cache=cache,
                                  recovery=recovery, balance=balance if balanced else None)
        quantize_loaded(loaded, precision, recipe, task, glue_dir)
        metrics = evaluate_dev(loaded.model, loaded.tokenizer, task,
                               dev_split(task, recipe, glue_dir), recipe)
        _save_masks_atomic(masks_path, masks, _with_balance(
            _masks_metadata(dense, loaded, block, ratio, fidelity, masks), balanced))
        record = AccuracyRecord(pruned=metrics[dense.metric], metrics=metrics,
                                seconds=time.perf_counter() - t0, masks_path=str(masks_path),
                                density=mask_statistics(masks).density, device=device_of(loaded.model),
                                recovery=recovery, balance=balanced or {}, **common)
        cache.put(record)
        return record


def _masks_name(task: str, block: str, ratio: float, fidelity: str, key: str,
                balanced: Mapping[str, Any] | None) -> str:
    """A measurement's mask file name (a balanced one names its PE columns: `-pe32`)."""
    tag = f"-pe{balanced['pe_columns']}" if balanced else ""
    return f"{task}-{block}-r{ratio:g}-{fidelity}{tag}-{key}.safetensors"


def _with_balance(metadata: dict[str, Any], balanced: Mapping[str, Any] | None) -> dict[str, Any]:
    """Mask-file metadata with `balance: {pe_columns: C}` when balanced (as `codesign prune
    --balanced` writes it); unchanged otherwise."""
    return {**metadata, "balance": dict(balanced)} if balanced else metadata


def _record_recipe(recipe: Recipe, fidelity: str, precision: str) -> dict[str, Any]:
    """The recipe fields a record names: the fidelity's, plus the quantization's calibration
    size when it is not fp32 (fp32 records: exactly as before)."""
    fields = recipe.stage_fields(fidelity)
    quant = recipe.quant_fields(precision)
    return fields if not quant else {**fields,
                                     "quant_calib_examples": quant["quant_calib_examples"]}


def _dense_record(dense: DenseCheckpoint, recipe: Recipe, precision: str, task: str,
                  glue_dir: Any, t0: float, common: dict[str, Any]) -> AccuracyRecord:
    """The dense model's record: at fp32 its cached dense evaluation (nothing is pruned or
    evaluated); at another precision the dense model fake-quantized and evaluated."""
    dense_common = {**common, "fidelity": "oneshot", "block_shape": None,
                    "recipe": _record_recipe(recipe, "oneshot", precision)}
    if precision == FP32:
        return AccuracyRecord(pruned=dense.score, metrics=dict(dense.metrics),
                              seconds=time.perf_counter() - t0, masks_path=None, density=1.0,
                              device=dense.device, **dense_common)
    from codesign.checkpoints import load_model

    loaded = load_model(dense.path, task=task)
    quantize_loaded(loaded, precision, recipe, task, glue_dir)
    metrics = evaluate_dev(loaded.model, loaded.tokenizer, task,
                           dev_split(task, recipe, glue_dir), recipe)
    return AccuracyRecord(pruned=metrics[dense.metric], metrics=metrics,
                          seconds=time.perf_counter() - t0, masks_path=None, density=1.0,
                          device=device_of(loaded.model), **dense_common)


def oneshot_masks(model: str, task: str, block_shape: Any, ratio: float,
                  recipe: Recipe | None = None, *, glue_dir: Any = None,
                  cache: AccuracyCache | None = None, balance: Any = None) -> Path:
    """Mask file of the dense fine-tuned model pruned one-shot (no evaluation), cached.

    For hardware-only design points: the same masks a `oneshot` measurement of this point uses
    (PE-balanced with `balance`, as `measure`).
    """
    recipe = Recipe() if recipe is None else recipe
    task, block, ratio, _ = _resolve_point(task, block_shape, ratio, "oneshot")
    if block is None:
        raise AccuracyError("oneshot_masks needs a block shape (ratio 0: use dense masks)")
    cache = AccuracyCache() if cache is None else cache
    balanced = balance_fields(balance) if ratio > 0 else None
    key = record_key(model_sha256(model), task, block, ratio, "oneshot", recipe,
                     balance=balanced)
    path = cache.masks_dir / _masks_name(task, block, ratio, "oneshot", key, balanced)
    if path.is_file():
        return path
    from codesign.checkpoints import load_model
    from codesign.pruning import oneshot_prune

    dense = dense_checkpoint(model, task, recipe, glue_dir=glue_dir, cache=cache)
    loaded = load_model(dense.path, task=task)
    masks = oneshot_prune(loaded.model, loaded.structure, BlockShape.parse(block), ratio,
                          **({"balance": balance} if balanced else {}))
    return _save_masks_atomic(path, masks, _with_balance(
        _masks_metadata(dense, loaded, block, ratio, "oneshot", masks), balanced))


# --- measurements made elsewhere (a worker process or a dask worker) ---------------------------


def cached_record(model: str, task: str, block_shape: Any, ratio: float, fidelity: str,
                  recipe: Recipe | None = None, *, cache: AccuracyCache | None = None,
                  precision: str = FP32, balance: Any = None) -> AccuracyRecord | None:
    """The cached record of one point (PE-balanced with `balance`), or None when it must be
    measured (nothing is measured, nothing is written)."""
    recipe = Recipe() if recipe is None else recipe
    task, block, ratio, fidelity = _resolve_point(task, block_shape, ratio, fidelity)
    cache = AccuracyCache() if cache is None else cache
    balanced = balance_fields(balance) if ratio > 0 else None
    return cache.get(record_key(model_sha256(model), task, block, ratio, fidelity, recipe,
                                _precision(precision), balanced))


def measure_with_masks(model: str, task: str, block_shape: Any, ratio: float, fidelity: str,
                       recipe: Recipe, *, glue_dir: Any, cache: AccuracyCache,
                       precision: str = FP32,
                       balance: Any = None) -> tuple[AccuracyRecord, bytes | None]:
    """`measure` into `cache` (e.g. a worker's private temporary cache), with the bytes of the
    record's mask file (None for the dense model): all a main process needs to import it."""
    record = measure(model, task, block_shape, ratio, fidelity, recipe, glue_dir=glue_dir,
                     cache=cache, precision=precision, balance=balance)
    data = Path(record.masks_path).read_bytes() if record.masks_path else None
    return record, data


def import_measurement(record: AccuracyRecord, masks_bytes: bytes | None, *,
                       dense: DenseCheckpoint, cache: AccuracyCache) -> AccuracyRecord:
    """Write a record measured elsewhere (`measure_with_masks`) into `cache`, its mask file
    first, so the entry reads as if measured here: the mask file keeps its name under
    ``cache.masks_dir`` and its metadata and the record name this cache's dense checkpoint
    `dense` (the same weights: its folder name holds the base hash, task and dense recipe)."""
    import dataclasses
    import tempfile

    from codesign.masks import load_masks

    masks_path = None
    if record.masks_path:
        if masks_bytes is None:
            raise AccuracyError(f"record {record.key}: names a mask file but none came with it")
        masks_path = cache.masks_dir / Path(record.masks_path).name
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / masks_path.name
            src.write_bytes(masks_bytes)
            loaded = load_masks(src)
        metadata = {**loaded.metadata, "source_checkpoint": str(dense.path)}
        _save_masks_atomic(masks_path, loaded.masks, metadata)
    out = dataclasses.replace(record, masks_path=None if masks_path is None else str(masks_path),
                              dense_checkpoint=str(dense.path), from_cache=False)
    try:
        cache.put(out)
    except BaseException:
        if masks_path is not None:
            masks_path.unlink(missing_ok=True)
        raise
    return out
