"""Measuring one design point: prune the cached dense model by a fidelity's procedure, evaluate
it on the dev split, and cache the record and its mask file.

What is modelled
* ``oneshot``: per matrix, the lowest-L2-norm blocks, exactly round(ratio * blocks) of them, are
  pruned; evaluate on the dev split. Seconds per point.
* ``calibrated``: one-shot, no labels, no gradient steps: ``calib_examples`` training sentences
  (seeded, never the dev split) rank the blocks by ``calib_saliency``: ``fisher`` (the default,
  ``codesign.pruning.fisher.fisher_prune``: the label-free Fisher of each block's mask, ranked
  across the whole model, so the ratio of all prunable weights goes and each matrix gets its own
  density; ``calib_scope=matrix``: the ratio in every matrix) or ``obs`` / ``norm``
  (``codesign.pruning.calibrate.calibrated_prune``: per matrix, in forward order, at the same
  exact count as oneshot); the kept weights and biases are then re-fitted by damped
  (``calib_damping``) least squares to the dense model's layer outputs.
* ``retrain``: oneshot, then masked retraining (pruned weights and their gradients held at zero)
  for ``retrain_examples`` x ``retrain_epochs``, evaluate. With ``retrain_start="calibrated"``
  the start is the ``calibrated`` fidelity's pruning instead (same calib_* fields, same seeded
  calibration sentences, so the same masks), and retraining continues from its reconstructed
  weights; the record's recipe then carries ``retrain_start`` and the calib_* fields. With
  ``recovery_holdout`` (default 1,024) the starting and retrained weights are scored on that
  many training sentences held out of the retraining sample, and the start is kept if
  retraining scored lower there (never the dev split); the record's ``recovery`` says which was
  kept. A retraining sample that would take the whole training split takes all but the
  held-out sentences.
* ``rgl``: the seed paper's pipeline from the dense fine-tuned model: reweighted group Lasso
  training (``rgl_examples`` x ``rgl_epochs``, lambda, eps, reweighting every
  ``rgl_reweight_every`` optimizer steps), hard pruning at the ratio, masked retraining, evaluate.
With ``recipe.distill`` on, the training steps of ``retrain`` and ``rgl`` (RGL training and
masked retraining alike) distil from the dense model: loss ``(1 - distill_alpha) * CE +
distill_alpha * T^2 * KL(teacher/T || student/T)``, T = ``distill_temperature``, the teacher's
logits read from the cache (``codesign.accuracy.teacher``: computed once per dense model and
training sample); the record's recipe then carries the distill fields. With
``distill_hidden`` > 0 the dense model also runs on every training batch and its encoder-layer
hidden states are matched (``codesign.pruning.train.hidden_distill_loss``).
``ratio == 0`` is the dense fine-tuned model itself, whatever the block shape and fidelity.

``balance`` (a ``codesign.pruning.balance.PEBalance``, None: off): PE-balanced masks, the same
kept count per matrix, chosen by the fidelity's own ranking (``oneshot`` and a magnitude start
of ``retrain``: block norms; ``calibrated`` and its start of ``retrain``: the calibrated
saliency, the re-fit then running on the balanced masks); retraining keeps the masks. ``rgl``
takes no balance (an AccuracyError). The balance group geometry (``balance_fields``) enters the
key, the record's ``balance`` and the mask file's metadata; without it all are as before.

``precision``: ``fp32`` (the default: the measurement as before, same key, same record) or a
hardware precision (``w4a8``, ``w8a8``, ...; int8 = w8a8): the pruned (or dense) model is then
fake-quantized (`codesign.accuracy.quantize`: weights per output channel, activations entering
the encoder GEMMs per tensor, calibrated on ``recipe.quant_calib_examples`` seeded training
sentences)
before the dev evaluation; the precision enters the key and the record. The record's ``dense``
stays the fp32 dense model's score (its ``drop`` includes the quantization).

The dev split's sampling noise is a bootstrap interval on the record (`evaluate_dev`); the noise
of training (seed, sampled subsets) is not (a study measures it with `accuracy.seeds`,
codesign.sweep.seeds). The mask
file is written before the record, and removed if the record is not committed, so an interrupted
measurement leaves nothing behind. No torch import at module level.
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
                                     evaluate_dev, train_config, train_split, utc_now)
from codesign.accuracy.quantize import FP32, QUANT_CALIB_STAGE, accuracy_precision
from codesign.accuracy.recipe import AccuracyError, Recipe, check_fidelity
from codesign.glue import get_task, load_split
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


class _Teacher:
    """The distillation settings of a measurement's training stages: `config(...)` is the
    stage's TrainConfig, with the dense model's cached logits on `split` when the recipe distils
    at this fidelity, else exactly `train_config(...)`."""

    def __init__(self, recipe: Recipe, fidelity: str, dense: DenseCheckpoint | None,
                 cache: AccuracyCache | None) -> None:
        self.recipe, self.dense, self.cache = recipe, dense, cache
        self.on = recipe.distills(fidelity)
        if self.on and (dense is None or cache is None):
            raise AccuracyError(f"recipe.distill at fidelity {fidelity!r} needs the dense "
                                "checkpoint and the cache: pass dense= and cache=")

    def config(self, split: Any, examples: int | None, epochs: int, lr: float) -> Any:
        plain = train_config(self.recipe, examples, epochs, lr)
        if not self.on:
            return plain
        from dataclasses import replace

        from codesign.accuracy.teacher import teacher_logits

        logits = teacher_logits(self.dense, split, max_seq_len=self.recipe.max_seq_len,
                                cache=self.cache)
        config = replace(plain, teacher_logits=logits, distill_alpha=self.recipe.distill_alpha,
                         distill_temperature=self.recipe.distill_temperature)
        if not self.recipe.distill_hidden:
            return config
        from codesign.checkpoints import load_model

        model = load_model(self.dense.path, task=self.dense.task).model
        return replace(config, distill_hidden=self.recipe.distill_hidden, teacher_model=model)


def _prune(fidelity: str, loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe,
           task: str, glue_dir: Any, progress: bool, *, dense: DenseCheckpoint | None = None,
           cache: AccuracyCache | None = None,
           recovery: dict[str, Any] | None = None, balance: Any = None) -> dict[str, Any]:
    """Prune `loaded.model` in place by the fidelity's procedure; returns the masks.
    `dense` and `cache` serve the teacher's logits when the recipe distils; `recovery` (a dict)
    receives what retraining's held-out check decided (`_retrain`); `balance` PE-balances the
    masks (not at rgl)."""
    recovery = {} if recovery is None else recovery
    from codesign.pruning import oneshot_prune

    teacher = _Teacher(recipe, fidelity, dense, cache)
    if fidelity == "rgl":
        if balance is not None:
            raise AccuracyError("fidelity rgl takes no PE balance (its group-lasso pruning is "
                                "unbalanced): measure balanced masks at oneshot, calibrated or "
                                "retrain")
        return _rgl(loaded, block, ratio, recipe, task, glue_dir, progress, teacher)
    if fidelity == "calibrated" or (fidelity == "retrain" and
                                    recipe.retrain_start == "calibrated"):
        masks = _calibrated(loaded, block, ratio, recipe, task, glue_dir, balance)
    else:
        masks = oneshot_prune(loaded.model, loaded.structure, block, ratio, balance=balance)
    if fidelity == "retrain":
        recovery.update(_retrain(loaded, masks, recipe, task, glue_dir, progress, teacher))
    return masks


def _retrain(loaded: Any, masks: Mapping[str, Any], recipe: Recipe, task: str, glue_dir: Any,
             progress: bool, teacher: _Teacher) -> dict[str, Any]:
    """Masked retraining in place. With ``recipe.recovery_holdout`` the starting and the
    retrained weights are scored on that many training sentences held out of the retraining
    sample, and the retrained weights are kept unless they score lower (then the start is
    restored); returns what the record's `recovery` says ({} without a holdout)."""
    import copy

    from codesign.pruning.train import finetune

    examples, holdout = recipe.retrain_examples, None
    if recipe.recovery_holdout and examples is not None:
        # a sample that would take the whole split (RTE, MRPC at the defaults) leaves the
        # held-out sentences out (smaller samples are as before)
        total = len(load_split(task, "train", glue_dir=glue_dir).text_a)
        if examples >= total:
            examples = max(1, total - int(recipe.recovery_holdout))
        holdout = load_split(task, "train", glue_dir=glue_dir, limit=recipe.recovery_holdout,
                             seed=recipe.seed + 4, exclude=(examples, recipe.seed + 1))
    train = train_split(task, examples, recipe, glue_dir, stage=1)
    metric = get_task(task).headline
    start_state = copy.deepcopy(loaded.model.state_dict()) if holdout is not None else None
    start = (evaluate_dev(loaded.model, loaded.tokenizer, task, holdout, recipe)[metric]
             if holdout is not None else None)
    finetune(loaded.model, loaded.tokenizer, train,
             teacher.config(train, examples, recipe.retrain_epochs, recipe.retrain_lr),
             masks=masks, progress=progress)
    if holdout is None:
        return {}
    retrained = evaluate_dev(loaded.model, loaded.tokenizer, task, holdout, recipe)[metric]
    kept = "retrained" if retrained >= start else "start"
    if kept == "start":
        loaded.model.load_state_dict(start_state)
    return {"holdout_examples": len(holdout.text_a), "metric": metric,
            "start": float(start), "retrained": float(retrained), "kept": kept}


def retrain_masked(loaded: Any, masks: Mapping[str, Any], recipe: Recipe, task: str, *,
                   dense: DenseCheckpoint, cache: AccuracyCache, glue_dir: Any = None,
                   progress: bool = False) -> dict[str, Any]:
    """The `retrain` fidelity's recovery stage on masks chosen elsewhere (e.g. a latency-aware
    allocation): masked retraining of `loaded.model` in place, distilled from `dense` when the
    recipe distils at `retrain`, with the held-out check; returns what the check decided."""
    return _retrain(loaded, masks, recipe, task, glue_dir, progress,
                    _Teacher(recipe, "retrain", dense, cache))


def _calibrated(loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe, task: str,
                glue_dir: Any, balance: Any = None) -> dict[str, Any]:
    """Calibrated one-shot pruning in place (no labels read, no gradient step); the masks
    (PE-balanced with `balance`)."""
    from codesign.pruning.calibrate import calibrated_prune
    from codesign.pruning.fisher import fisher_prune

    batches = _calibration_batches(loaded, recipe, task, glue_dir)
    if recipe.calib_saliency == "fisher":
        return fisher_prune(loaded.model, loaded.structure, block_shape=block, ratio=ratio,
                            calibration=batches, scope=recipe.scope,
                            damping=recipe.calib_damping, balance=balance,
                            min_density=recipe.calib_min_density,
                            fisher_examples=recipe.calib_fisher_examples)
    return calibrated_prune(loaded.model, loaded.structure, block_shape=block, ratio=ratio,
                            calibration=batches, saliency=recipe.calib_saliency,
                            damping=recipe.calib_damping, balance=balance)


def _calibration_batches(loaded: Any, recipe: Recipe, task: str, glue_dir: Any) -> list:
    """The calibrated fidelity's calibration sentences, tokenised: stage 3, its own seeded
    sample of the training split (0 dense, 1 retrain, 2 rgl); no labels are read."""
    from codesign.pruning.calibrate import tokenise_calibration

    split = train_split(task, recipe.calib_examples, recipe, glue_dir, stage=3)
    return tokenise_calibration(loaded.tokenizer, split, max_seq_len=recipe.max_seq_len,
                                batch_size=recipe.batch_size)


def _rgl(loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe, task: str,
         glue_dir: Any, progress: bool, teacher: _Teacher) -> dict[str, Any]:
    """The seed paper's RGL training, hard pruning and masked retraining, in place; the masks."""
    from codesign.pruning.rgl import RGLConfig, rgl_prune

    # one split for both stages (rgl_prune's interface); each stage's TrainConfig takes its own
    # seeded subset of it (max_examples)
    sizes = [recipe.rgl_examples, recipe.retrain_examples]
    limit = None if None in sizes else max(sizes)
    split = train_split(task, limit, recipe, glue_dir, stage=2)
    # reweight every N optimizer steps: the low-budget recipes run far fewer than the paper's
    # milestone epochs [4, 8, 12, 16], which would never be reached
    cfg = RGLConfig(lambda_=recipe.rgl_lambda, eps=recipe.rgl_eps, milestones=(),
                    reweight_every=recipe.rgl_reweight_every, schedule_unit="step")
    out = rgl_prune(loaded.model, loaded.tokenizer, loaded.structure, split,
                    block_shape=block, ratio=ratio, rgl=cfg,
                    train=teacher.config(split, recipe.rgl_examples, recipe.rgl_epochs,
                                         recipe.rgl_lr),
                    retrain=teacher.config(split, recipe.retrain_examples,
                                           recipe.retrain_epochs, recipe.retrain_lr),
                    progress=progress)
    return out.masks


def _precision(precision: Any) -> str:
    """The canonical precision of a measurement, or a one-line AccuracyError."""
    try:
        return accuracy_precision(precision)
    except ValueError as err:
        raise AccuracyError(str(err)) from None


def _quantize(loaded: Any, precision: str, recipe: Recipe, task: str, glue_dir: Any) -> None:
    """Fake-quantize `loaded.model` in place at `precision` (nothing at fp32), its activation
    scales calibrated on `recipe.quant_calib_examples` seeded training sentences (never the dev
    split; labels are not read)."""
    if precision == FP32:
        return
    from codesign.accuracy.quantize import fake_quantize, scheme
    from codesign.pruning.calibrate import tokenise_calibration

    batches = None
    if not scheme(precision).floating:
        split = train_split(task, recipe.quant_calib_examples, recipe, glue_dir,
                            stage=QUANT_CALIB_STAGE)
        batches = tokenise_calibration(loaded.tokenizer, split, max_seq_len=recipe.max_seq_len,
                                       batch_size=recipe.batch_size)
    fake_quantize(loaded.model, loaded.structure, precision, calibration=batches)


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
        masks = _prune(fidelity, loaded, BlockShape.parse(block), ratio, recipe, task, glue_dir,
                       progress, dense=dense, cache=cache, recovery=recovery,
                       balance=balance if balanced else None)
        _quantize(loaded, precision, recipe, task, glue_dir)
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
    _quantize(loaded, precision, recipe, task, glue_dir)
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
