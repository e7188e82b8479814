"""The one training loop: dense fine-tuning, RGL training (a regulariser hook), masked retraining.

What is modelled: the fine-tuning recipe of the seed authors' code (AdamW without weight decay on
biases and LayerNorm weights, linear learning-rate decay after an optional linear warm-up,
gradient-norm clipping at 1.0, batch 32, sequence length 128), with the task loss of the
Hugging Face sequence-classification head (cross-entropy, or MSE for STS-B). A regulariser is a
callable `regularizer(model, epoch, step) -> scalar tensor` added to the loss (the RGL penalty
lives in `rgl.py`). Fixed masks hold pruned weights and their gradients at zero: gradients are
masked before the optimiser step and weights re-masked after it, so neither AdamW's moments
nor weight decay can revive a pruned block.

What is ignored: mixed precision, gradient accumulation, distributed training, early stopping.
The device is picked automatically (cuda if available, else cpu); torch's thread count is left
as the caller set it unless `TrainConfig.threads` is given.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Regularizer = Callable[[torch.nn.Module, int, int], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the seed authors' (lr 2e-5, batch 32, seq 128, 3 epochs).

    `max_examples` keeps a seeded random subset of the split; `max_steps` stops early (tests,
    benchmarks); `threads` sets torch's intra-op threads for the run (None: leave as is);
    `device` overrides the automatic choice. Batches are padded to their longest example unless
    `pad_to_max` (every batch padded to max_seq_len, as the authors' GLUE script did: slower on
    short-sentence tasks, same result up to float rounding).
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

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size <= 0 or self.max_seq_len <= 0 or self.lr < 0:
            raise ValueError(f"TrainConfig: epochs >= 0, lr >= 0, batch_size > 0 and "
                             f"max_seq_len > 0 required, got {self}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"TrainConfig.warmup_ratio {self.warmup_ratio}: must lie in [0, 1)")


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


def subset(split: Any, max_examples: int | None, seed: int) -> Any:
    """A seeded random subset of a GlueSplit (in file order), or the split itself."""
    if max_examples is None or max_examples >= len(split.text_a):
        return split
    if max_examples <= 0:
        raise ValueError(f"max_examples={max_examples}: use a positive count or None")
    from dataclasses import replace

    keep = np.sort(np.random.default_rng(seed).choice(len(split.text_a), size=max_examples,
                                                      replace=False))
    return replace(split, text_a=[split.text_a[i] for i in keep],
                   text_b=None if split.text_b is None else [split.text_b[i] for i in keep],
                   labels=np.asarray(split.labels)[keep])


def _encode(tokenizer: Any, split: Any, max_seq_len: int) -> list[dict[str, list[int]]]:
    args = (split.text_a,) if split.text_b is None else (split.text_a, split.text_b)
    enc = tokenizer(*args, truncation=True, max_length=max_seq_len, padding=False)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(split.text_a))]


def _collate(tokenizer: Any, features: list[dict[str, list[int]]], device: torch.device,
             pad_to: int | None = None) -> dict[str, torch.Tensor]:
    if pad_to:
        batch = tokenizer.pad(features, padding="max_length", max_length=pad_to,
                              return_tensors="pt")
    else:
        batch = tokenizer.pad(features, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


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
    ({parameter name: BlockMask}) are applied first and held fixed. `config.threads` applies
    for the run only (torch's previous thread count is restored afterwards).
    """
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _finetune(model, tokenizer, split, config, regularizer, masks, progress, desc)
    finally:
        torch.set_num_threads(previous_threads)


def _finetune(model: torch.nn.Module, tokenizer: Any, split: Any, config: TrainConfig,
              regularizer: Regularizer | None, masks: Mapping[str, Any] | None, progress: bool,
              desc: str) -> TrainStats:
    from tqdm.auto import tqdm

    from codesign.pruning import apply_masks

    seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device)
    data = subset(split, config.max_examples, config.seed)
    n = len(data.text_a)
    if n == 0:
        raise ValueError(f"{getattr(split, 'task', 'split')}: no training examples")
    features = _encode(tokenizer, data, config.max_seq_len)
    labels = _label_tensor(data.labels, data.num_labels, device)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, int(config.max_steps))
    element_masks = apply_masks(model, masks) if masks else {}
    params = dict(model.named_parameters())
    optimizer = _optimizer(model, config)
    scheduler = _linear_schedule(optimizer, total_steps,
                                 int(config.warmup_ratio * total_steps))
    shuffler = torch.Generator().manual_seed(config.seed)
    model.train()
    step, seen = 0, 0
    epoch_losses: list[float] = []
    task_loss_value, reg_value = float("nan"), None
    start = time.perf_counter()
    with tqdm(total=total_steps, desc=desc, disable=not progress, unit="step",
              leave=False) as bar:
        for epoch in range(config.epochs):
            if step >= total_steps:
                break
            order = torch.randperm(n, generator=shuffler).tolist()
            running, count = 0.0, 0
            for first in range(0, n, config.batch_size):
                if step >= total_steps:
                    break
                idx = order[first:first + config.batch_size]
                batch = _collate(tokenizer, [features[i] for i in idx], device,
                                 config.max_seq_len if config.pad_to_max else None)
                out = model(**batch, labels=labels[idx])
                loss = out.loss
                task_loss_value = float(loss.detach())
                if regularizer is not None:
                    reg = regularizer(model, epoch, step)
                    reg_value = float(reg.detach())
                    loss = loss + reg
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _mask_grads(params, element_masks)
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                _mask_weights(params, element_masks)
                step += 1
                seen += len(idx)
                running += task_loss_value
                count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{task_loss_value:.4f}", refresh=False)
            epoch_losses.append(running / max(1, count))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainStats(steps=step, examples=seen, seconds=seconds, device=str(device),
                      epoch_task_loss=tuple(epoch_losses), final_task_loss=task_loss_value,
                      final_reg_loss=reg_value, threads=torch.get_num_threads())


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
             ) -> np.ndarray:
    """Predictions on a split: class ids (int64), or scores (float32) for a regression head.

    Batches are formed over length-sorted examples (less padding), then put back in order.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    model.eval()
    features = _encode(tokenizer, split, max_seq_len)
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    outputs: list[np.ndarray] = []
    for first in tqdm(range(0, len(order), batch_size), desc="evaluate", disable=not progress,
                      leave=False):
        idx = order[first:first + batch_size]
        batch = _collate(tokenizer, [features[i] for i in idx], device,
                         max_seq_len if pad_to_max else None)
        logits = model(**batch).logits.float().cpu().numpy()
        outputs.append(logits)
    logits = np.concatenate(outputs) if outputs else np.zeros((0, 1), dtype=np.float32)
    if logits.shape[-1] == 1:
        preds = logits[:, 0].astype(np.float32)
    else:
        preds = logits.argmax(axis=-1).astype(np.int64)
    out = np.empty_like(preds)
    out[order] = preds
    return out
