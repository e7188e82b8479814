"""The one training loop: dense fine-tuning, RGL training (a regulariser hook), masked retraining.

What is modelled: the fine-tuning recipe of the seed authors' code (AdamW without weight decay on
biases and LayerNorm weights, linear learning-rate decay after an optional linear warm-up,
gradient-norm clipping at 1.0, batch 32, sequence length 128), with the task loss of the
Hugging Face sequence-classification head (cross-entropy, or MSE for STS-B). A regulariser is a
callable `regularizer(model, epoch, step) -> scalar tensor` added to the loss (the RGL penalty
lives in `rgl.py`). Fixed masks hold pruned weights and their gradients at zero: gradients are
masked before the optimiser step and weights re-masked after it, so neither AdamW's moments
nor weight decay can revive a pruned block.

Distillation (optional): with `TrainConfig.teacher_logits` (one row of logits per example of the
split handed to `finetune`, e.g. a cached teacher's), the loss is
``(1 - alpha) * task_loss + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``
(Hinton et al. 2015), alpha = `distill_alpha`, T = `distill_temperature`; a regression head
(one output) uses ``MSE(student, teacher)`` instead of the KL term (T unused). The rows are looked
up by example index, so no teacher model runs during training. Hidden-state matching (optional,
`TrainConfig.distill_hidden` > 0 with a `teacher_model`): the teacher model runs on every batch
(no gradient) and ``distill_hidden * hidden_distill_loss(...)`` is added: over the encoder
layers, the mean squared difference of the student's and the teacher's hidden states on real
(unpadded) tokens, as in TinyBERT's hidden-state term (Jiao et al. 2020), without its
projection (the student and teacher have the same width here).

What is ignored: mixed precision, gradient accumulation, distributed training, early stopping.
The device is picked automatically (cuda if available, else cpu). Batching, tokenisation caching,
threads and determinism live in `batching.py`: by default, length-bucketed batches in a shuffled,
seeded order, `TrainConfig.threads` torch threads (None: every CPU this process may use), and
torch's deterministic algorithms on a CPU, so one seed at one thread count gives one result.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from codesign.pruning.batching import (check_batching, collate, encode, epoch_batches,
                                       eval_order, lengths_of, run_settings)

Regularizer = Callable[[torch.nn.Module, int, int], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the seed authors' (lr 2e-5, batch 32, seq 128, 3 epochs).

    `max_examples` keeps a seeded random subset of the split; `max_steps` stops early (tests,
    benchmarks); `threads` sets torch's intra-op threads for the run (None:
    `batching.default_threads()`, the CPUs this process may use); `device` overrides the
    automatic choice. `batching` is one of `BATCHING_MODES`: "bucket" (default: batches of
    similar length, visited in a shuffled order, each padded to its longest), "longest"
    (shuffled batches padded to their longest: the previous default) or "max_length" (padded to
    max_seq_len, as the authors' GLUE script did). `pad_to_max=True` is the older spelling of
    "max_length" and overrides `batching`. `teacher_logits`, `distill_alpha` and
    `distill_temperature`: distillation (module docstring); the rows align with the split given
    to `finetune` (before `max_examples` subsets it). `distill_hidden` and `teacher_model`:
    hidden-state matching (module docstring).
    """

    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 32
    max_seq_len: int = 128
    seed: int = 0
    max_examples: int | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    threads: int | None = None
    device: str | None = None
    pad_to_max: bool = False
    batching: str = "bucket"
    distill_alpha: float = 0.0
    distill_temperature: float = 1.0
    # [examples of the split given to finetune, labels] logits (numpy or torch); None: no
    # distillation. Not compared or printed (an array).
    teacher_logits: Any = field(default=None, compare=False, repr=False)
    # hidden-state matching: the term's weight (0: off) and the model whose hidden states are
    # matched (same layer count and width as the student; run without gradient on every batch)
    distill_hidden: float = 0.0
    teacher_model: Any = field(default=None, compare=False, repr=False)

    @property
    def batching_mode(self) -> str:
        """The batching a run uses: "max_length" when `pad_to_max`, else `batching`."""
        return "max_length" if self.pad_to_max else self.batching

    def __post_init__(self) -> None:
        check_batching(self.batching)
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"TrainConfig.threads={self.threads}: use a positive count or None")
        if self.epochs < 0 or self.batch_size <= 0 or self.max_seq_len <= 0 or self.lr < 0:
            raise ValueError(f"TrainConfig: epochs >= 0, lr >= 0, batch_size > 0 and "
                             f"max_seq_len > 0 required, got {self}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"TrainConfig.warmup_ratio {self.warmup_ratio}: must lie in [0, 1)")
        if not 0.0 <= float(self.distill_alpha) <= 1.0:
            raise ValueError(f"TrainConfig.distill_alpha {self.distill_alpha}: must lie in [0, 1]")
        if not float(self.distill_temperature) > 0.0:
            raise ValueError(f"TrainConfig.distill_temperature {self.distill_temperature}: "
                             "must be > 0")
        if not float(self.distill_hidden) >= 0.0:
            raise ValueError(f"TrainConfig.distill_hidden {self.distill_hidden}: must be >= 0")
        if self.distill_hidden and self.teacher_model is None:
            raise ValueError("TrainConfig.distill_hidden > 0 needs teacher_model (the model "
                             "whose hidden states are matched)")


@dataclass(frozen=True)
class TrainStats:
    """What one run did: steps, examples, seconds, losses (task and regulariser separately)."""

    steps: int
    examples: int  # training examples seen (with repeats over epochs)
    seconds: float
    device: str
    epoch_task_loss: tuple[float, ...]
    final_task_loss: float
    final_reg_loss: float | None
    threads: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def seconds_per_1k_examples(self) -> float:
        return 1000.0 * self.seconds / self.examples if self.examples else float("nan")


def pick_device(explicit: str | None = None) -> torch.device:
    """cuda if available, else cpu (or the explicit choice)."""
    if explicit:
        return torch.device(explicit)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def subset_indices(n: int, max_examples: int | None, seed: int) -> np.ndarray | None:
    """The sorted indices of the seeded random subset `subset` keeps, or None (all of them)."""
    if max_examples is None or max_examples >= n:
        return None
    if max_examples <= 0:
        raise ValueError(f"max_examples={max_examples}: use a positive count or None")
    return np.sort(np.random.default_rng(seed).choice(n, size=max_examples, replace=False))


def subset(split: Any, max_examples: int | None, seed: int) -> Any:
    """A seeded random subset of a GlueSplit (in file order), or the split itself."""
    keep = subset_indices(len(split.text_a), max_examples, seed)
    if keep is None:
        return split
    from dataclasses import replace

    return replace(split, text_a=[split.text_a[i] for i in keep],
                   text_b=None if split.text_b is None else [split.text_b[i] for i in keep],
                   labels=np.asarray(split.labels)[keep])


def _label_tensor(labels: np.ndarray, num_labels: int, device: torch.device) -> torch.Tensor:
    if num_labels == 1:
        return torch.as_tensor(np.asarray(labels, dtype=np.float32), device=device)
    return torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # the HF recipe: no weight decay on biases and LayerNorm weights
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
         else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def finetune(model: torch.nn.Module, tokenizer: Any, split: Any, config: TrainConfig, *,
             regularizer: Regularizer | None = None, masks: Mapping[str, Any] | None = None,
             progress: bool = True, desc: str = "train") -> TrainStats:
    """Train `model` in place on a GlueSplit; returns what the run did.

    `regularizer(model, epoch, step)` is added to the task loss at every step. `masks`
    ({parameter name: BlockMask}) are applied first and held fixed. The thread count and (on a
    CPU) deterministic algorithms apply for the run only (`batching.run_settings`).
    """
    device = pick_device(config.device)
    with run_settings(config.threads, device):
        return _finetune(model, tokenizer, split, config, regularizer, masks, progress, desc,
                         device)


def _finetune(model: torch.nn.Module, tokenizer: Any, split: Any, config: TrainConfig,
              regularizer: Regularizer | None, masks: Mapping[str, Any] | None, progress: bool,
              desc: str, device: torch.device) -> TrainStats:
    from tqdm.auto import tqdm

    from codesign.pruning import apply_masks

    seed_everything(config.seed)  # python, numpy, torch (dropout) and cuda generators
    model.to(device)
    data = subset(split, config.max_examples, config.seed)
    n = len(data.text_a)
    if n == 0:
        raise ValueError(f"{getattr(split, 'task', 'split')}: no training examples")
    teacher = _teacher_rows(config, split, device)
    if config.distill_hidden:
        config.teacher_model.to(device).eval()
    features = encode(tokenizer, data, config.max_seq_len)
    lengths = lengths_of(features)
    labels = _label_tensor(data.labels, data.num_labels, device)
    total_steps = math.ceil(n / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, int(config.max_steps))
    element_masks = apply_masks(model, masks) if masks else {}
    step = _Step(model, _optimizer(model, config), config, regularizer, element_masks, teacher)
    step.scheduler = _linear_schedule(step.optimizer, total_steps,
                                      int(config.warmup_ratio * total_steps))
    shuffler = torch.Generator().manual_seed(config.seed)  # data order: the only draws it makes
    pad_to = config.max_seq_len if config.batching_mode == "max_length" else None
    model.train()
    epoch_losses: list[float] = []
    start = time.perf_counter()
    with tqdm(total=total_steps, desc=desc, disable=not progress, unit="step",
              leave=False) as bar:
        for epoch in range(config.epochs):
            if step.count >= total_steps:
                break
            running, count = 0.0, 0
            for idx in epoch_batches(lengths, config.batch_size, config.batching_mode, shuffler):
                if step.count >= total_steps:
                    break
                batch = collate(tokenizer, [features[i] for i in idx], device, pad_to)
                running += step(batch, labels[idx], epoch, idx)
                count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{step.task_loss:.4f}", refresh=False)
            epoch_losses.append(running / max(1, count))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainStats(steps=step.count, examples=step.seen, seconds=seconds, device=str(device),
                      epoch_task_loss=tuple(epoch_losses), final_task_loss=step.task_loss,
                      final_reg_loss=step.reg_loss, threads=torch.get_num_threads(),
                      extra=_extra(config, step))


def _extra(config: TrainConfig, step: "_Step") -> dict[str, Any]:
    """TrainStats.extra: the batching, and the distillation settings and last term if any."""
    extra: dict[str, Any] = {"batching": config.batching_mode}
    if step.teacher is not None:
        extra.update(distill_alpha=float(config.distill_alpha),
                     distill_temperature=float(config.distill_temperature),
                     final_distill_loss=step.distill_loss)
    if config.distill_hidden:
        extra.update(distill_hidden=float(config.distill_hidden),
                     final_hidden_loss=step.hidden_loss)
    return extra


def _teacher_rows(config: TrainConfig, split: Any, device: torch.device) -> torch.Tensor | None:
    """The teacher logits of the examples `finetune` trains on (row i = example i of the
    subset), on `device`; None without a teacher. A one-line error if the rows do not match."""
    if config.teacher_logits is None:
        return None
    rows = torch.as_tensor(np.asarray(config.teacher_logits, dtype=np.float32))
    n, labels = len(split.text_a), int(split.num_labels)
    if rows.ndim != 2 or rows.shape != (n, labels):
        raise ValueError(f"TrainConfig.teacher_logits: shape {tuple(rows.shape)}, the split "
                         f"needs ({n}, {labels}); compute them on the split given to finetune")
    keep = subset_indices(n, config.max_examples, config.seed)
    if keep is not None:
        rows = rows[torch.as_tensor(keep)]
    return rows.to(device)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distillation term: T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean;
    for one output (regression), MSE(student, teacher). Zero when the logits are equal."""
    if student.shape[-1] == 1:
        return torch.nn.functional.mse_loss(student.float(), teacher.float())
    t = float(temperature)
    log_student = torch.nn.functional.log_softmax(student.float() / t, dim=-1)
    log_teacher = torch.nn.functional.log_softmax(teacher.float() / t, dim=-1)
    kl = torch.nn.functional.kl_div(log_student, log_teacher, reduction="batchmean",
                                    log_target=True)
    return kl * (t * t)


def hidden_distill_loss(student: Any, teacher: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden-state term: the sum over encoder layers (the embedding output, index 0 of
    Hugging Face's `hidden_states`, excluded) of the mean squared difference per real token and
    feature; `attention_mask` [batch, tokens] marks the real tokens. Zero when they are equal."""
    real = attention_mask.unsqueeze(-1).to(student[-1].dtype)
    count = real.sum() * student[-1].shape[-1]
    return sum((((s.float() - t.float()) ** 2) * real).sum() / count
               for s, t in zip(student[1:], teacher[1:]))


class _Step:
    """One optimiser step: forward, task loss (+ regulariser), backward, masked gradients,
    clipping, AdamW, schedule, re-masked weights. Keeps the counters a run reports."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, regularizer: Regularizer | None,
                 element_masks: Mapping[str, torch.Tensor],
                 teacher: torch.Tensor | None = None) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.regularizer, self.element_masks = regularizer, element_masks
        self.teacher = teacher
        self.params = dict(model.named_parameters())
        self.scheduler: Any = None
        self.count, self.seen = 0, 0
        self.task_loss, self.reg_loss = float("nan"), None
        self.distill_loss: float | None = None
        self.hidden_loss: float | None = None

    def __call__(self, batch: Mapping[str, torch.Tensor], labels: torch.Tensor,
                 epoch: int, idx: Any = None) -> float:
        hidden = bool(self.config.distill_hidden)
        out = self.model(**batch, labels=labels, output_hidden_states=hidden)
        loss = out.loss
        self.task_loss = float(loss.detach())
        if self.teacher is not None:
            alpha = float(self.config.distill_alpha)
            rows = self.teacher[torch.as_tensor(idx, device=self.teacher.device)]
            term = distill_loss(out.logits, rows, self.config.distill_temperature)
            self.distill_loss = float(term.detach())
            loss = (1.0 - alpha) * loss + alpha * term
        if hidden:
            with torch.no_grad():
                target = self.config.teacher_model(**batch, output_hidden_states=True)
            term = hidden_distill_loss(out.hidden_states, target.hidden_states,
                                       batch["attention_mask"])
            self.hidden_loss = float(term.detach())
            loss = loss + float(self.config.distill_hidden) * term
        if self.regularizer is not None:
            reg = self.regularizer(self.model, epoch, self.count)
            self.reg_loss = float(reg.detach())
            loss = loss + reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _mask_grads(self.params, self.element_masks)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        _mask_weights(self.params, self.element_masks)
        self.count += 1
        self.seen += len(labels)
        return self.task_loss


def _linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                     warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps, then linear decay to 0 at `total_steps`."""
    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def _mask_grads(params: Mapping[str, torch.nn.Parameter],
                element_masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the gradients of pruned weights (before the optimiser step)."""
    for name, element in element_masks.items():
        grad = params[name].grad
        if grad is not None:
            grad.mul_(element)


@torch.no_grad()
def _mask_weights(params: Mapping[str, torch.nn.Parameter],
                  element_masks: Mapping[str, torch.Tensor]) -> None:
    """Re-zero pruned weights (after the optimiser step: no moment or decay revives them)."""
    for name, element in element_masks.items():
        params[name].mul_(element)


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer: Any, split: Any, *, max_seq_len: int = 128,
             batch_size: int = 64, progress: bool = False, pad_to_max: bool = False,
             sort_by_length: bool = True, threads: int | None = None) -> np.ndarray:
    """Predictions on a split, in the split's order: class ids (int64), or scores (float32) for
    a regression head.

    By default batches are formed over length-sorted examples (less padding) and the
    predictions put back in input order; `sort_by_length=False` batches in input order (the
    benchmark's comparison). `threads` as in `TrainConfig` (None: `default_threads()`).
    Padding changes float rounding only: predictions agree with the unsorted ones (tested).
    """
    logits = predict_logits(model, tokenizer, split, max_seq_len=max_seq_len,
                            batch_size=batch_size, progress=progress, pad_to_max=pad_to_max,
                            sort_by_length=sort_by_length, threads=threads)
    if logits.shape[-1] == 1:
        return logits[:, 0].astype(np.float32)
    return logits.argmax(axis=-1).astype(np.int64)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, tokenizer: Any, split: Any, *,
                   max_seq_len: int = 128, batch_size: int = 64, progress: bool = False,
                   pad_to_max: bool = False, sort_by_length: bool = True,
                   threads: int | None = None) -> np.ndarray:
    """The model's float32 logits [examples, outputs] on a split, in the split's order (eval
    mode: no dropout). Batching and threads as in `evaluate`."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    model.eval()
    features = encode(tokenizer, split, max_seq_len)
    order = eval_order(lengths_of(features), sort_by_length)
    outputs: list[np.ndarray] = []
    with run_settings(threads, device):
        for first in tqdm(range(0, len(order), batch_size), desc="evaluate",
                          disable=not progress, leave=False):
            idx = order[first:first + batch_size]
            batch = collate(tokenizer, [features[i] for i in idx], device,
                            max_seq_len if pad_to_max else None)
            outputs.append(model(**batch).logits.float().cpu().numpy())
    logits = np.concatenate(outputs) if outputs else np.zeros((0, 1), dtype=np.float32)
    out = np.empty_like(logits)
    out[order] = logits
    return out
