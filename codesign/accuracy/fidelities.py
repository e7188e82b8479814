"""The pruning procedure of each accuracy fidelity, applied in place to a loaded dense model.

What each fidelity does to the loaded dense fine-tuned model (`prune_at_fidelity`, in place):

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
sentences; `quantize_loaded`) before the dev evaluation; the precision enters the key and the record. The record's ``dense``
stays the fp32 dense model's score (its ``drop`` includes the quantization).

No torch import at module level.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codesign.accuracy.cache import AccuracyCache
from codesign.accuracy.dense import DenseCheckpoint, evaluate_dev, train_config, train_split
from codesign.accuracy.quantize import FP32, QUANT_CALIB_STAGE
from codesign.accuracy.recipe import AccuracyError, Recipe
from codesign.glue import get_task, load_split


class Teacher:
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


def prune_at_fidelity(fidelity: str, loaded: Any, block: tuple[int, int], ratio: float,
                      recipe: Recipe, task: str, glue_dir: Any, progress: bool, *, dense: DenseCheckpoint | None = None,
           cache: AccuracyCache | None = None,
           recovery: dict[str, Any] | None = None, balance: Any = None) -> dict[str, Any]:
    """Prune `loaded.model` in place by the fidelity's procedure; returns the masks.
    `dense` and `cache` serve the teacher's logits when the recipe distils; `recovery` (a dict)
    receives what retraining's held-out check decided (`_retrain`); `balance` PE-balances the
    masks (not at rgl)."""
    recovery = {} if recovery is None else recovery
    from codesign.pruning import oneshot_prune

    teacher = Teacher(recipe, fidelity, dense, cache)
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
             progress: bool, teacher: Teacher) -> dict[str, Any]:
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
                    Teacher(recipe, "retrain", dense, cache))


def _calibrated(loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe, task: str,
                glue_dir: Any, balance: Any = None) -> dict[str, Any]:
    """Calibrated one-shot pruning in place (no labels read, no gradient step); the masks
    (PE-balanced with `balance`)."""
    from codesign.pruning.calibrate import calibrated_prune
    from codesign.pruning.fisher import fisher_prune

    batches = calibration_batches(loaded, recipe, task, glue_dir)
    if recipe.calib_saliency == "fisher":
        return fisher_prune(loaded.model, loaded.structure, block_shape=block, ratio=ratio,
                            calibration=batches, scope=recipe.scope,
                            damping=recipe.calib_damping, balance=balance,
                            min_density=recipe.calib_min_density,
                            fisher_examples=recipe.calib_fisher_examples)
    return calibrated_prune(loaded.model, loaded.structure, block_shape=block, ratio=ratio,
                            calibration=batches, saliency=recipe.calib_saliency,
                            damping=recipe.calib_damping, balance=balance)


def calibration_batches(loaded: Any, recipe: Recipe, task: str, glue_dir: Any) -> list:
    """The calibrated fidelity's calibration sentences, tokenised: stage 3, its own seeded
    sample of the training split (0 dense, 1 retrain, 2 rgl); no labels are read."""
    from codesign.pruning.calibrate import tokenise_calibration

    split = train_split(task, recipe.calib_examples, recipe, glue_dir, stage=3)
    return tokenise_calibration(loaded.tokenizer, split, max_seq_len=recipe.max_seq_len,
                                batch_size=recipe.batch_size)


def _rgl(loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe, task: str,
         glue_dir: Any, progress: bool, teacher: Teacher) -> dict[str, Any]:
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


def quantize_loaded(loaded: Any, precision: str, recipe: Recipe, task: str,
                    glue_dir: Any) -> None:
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
