"""Reweighted group Lasso block pruning (Li et al., Findings of EMNLP 2020), in three stages.

Stage 1 (RGL training): fine-tune on the task with
    loss = task loss + sum over matrices W of lambda_W * sum over blocks g of alpha_g * ||W_g||_2,
    alpha_g = 1 / (||W_g||_2 + eps), held constant between reweightings (no gradient through it)
    and recomputed on a schedule (the authors' code: at milestone epochs [4, 8, 12, 16]; here
    any epoch or step milestones, or every N epochs/steps).
Stage 2 (hard pruning): per matrix, the round(r * nblocks) blocks with the smallest L2 norms are
    zeroed (r global, or per layer / role / matrix from a mapping).
Stage 3 (masked retraining): fine-tune with the stage-2 mask fixed, with its own learning rate.
The one-shot baseline is stage 2 applied to a (possibly dense fine-tuned) model.

What is ignored: the authors' ADMM variant and their per-layer ratio search; the penalty's
gradient at an exactly-zero block is taken as zero (a tiny constant inside the square root).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from codesign.pruning import PerMatrix, oneshot_prune, per_matrix_value
from codesign.pruning.blocks import block_norms, block_sq_norms
from codesign.pruning.train import TrainConfig, TrainStats, finetune

# Inside sqrt(sum of squares + _TINY): keeps the gradient finite at an all-zero (padded or
# pruned) block without changing any non-zero block's norm measurably.
_TINY = 1e-12


@dataclass(frozen=True)
class RGLConfig:
    """The reweighted group Lasso settings (defaults: the seed authors').

    `lambdas` overrides `lambda_` per matrix: keys are parameter names, layer indices or roles
    (see `codesign.pruning.per_matrix_value`). Reweighting happens at the start of each
    `milestones` unit (epoch or step, per `schedule_unit`) and, if `reweight_every` is set,
    every that many units; alpha is always computed once before the first step.
    """

    lambda_: float = 1e-4
    lambdas: Mapping[Any, float] | None = None
    eps: float = 1e-3
    milestones: tuple[int, ...] = (4, 8, 12, 16)
    reweight_every: int | None = None
    schedule_unit: str = "epoch"
    include_heads: bool = False

    def __post_init__(self) -> None:
        if self.schedule_unit not in ("epoch", "step"):
            raise ValueError(f"RGLConfig.schedule_unit {self.schedule_unit!r}: use 'epoch' or "
                             "'step'")
        if self.eps <= 0 or self.lambda_ < 0:
            raise ValueError(f"RGLConfig: eps > 0 and lambda_ >= 0 required, got eps={self.eps}, "
                             f"lambda_={self.lambda_}")
        if self.reweight_every is not None and self.reweight_every <= 0:
            raise ValueError(f"RGLConfig.reweight_every {self.reweight_every}: must be positive")

    def lambda_for(self, name: str, layer: int, role: str) -> float:
        if self.lambdas:
            spec = dict(self.lambdas)
            spec.setdefault("default", self.lambda_)
            return per_matrix_value(spec, name, layer, role, what="RGL lambda")
        return self.lambda_


class GroupLassoPenalty:
    """The stage-1 penalty as a `finetune` regulariser: call(model, epoch, step) -> tensor."""

    def __init__(self, model: torch.nn.Module, structure: Any, block_shape: tuple[int, int],
                 config: RGLConfig = RGLConfig()) -> None:
        self.block_shape = (int(block_shape[0]), int(block_shape[1]))
        self.config = config
        params = dict(model.named_parameters())
        self.entries = [(name, layer, role, config.lambda_for(name, layer, role))
                        for name, layer, role in structure.prunable(
                            params, include_heads=config.include_heads)]
        if not self.entries:
            raise ValueError(f"no prunable matrices for the {structure.architecture} layout")
        self.alphas: dict[str, torch.Tensor] = {}
        self.reweight_points: list[int] = []  # units (epochs or steps) at which alpha was set
        self._last_unit: int | None = None
        self.reweight(model)

    def reweight(self, model: torch.nn.Module) -> None:
        """alpha_g = 1 / (||W_g|| + eps) from the current weights (held constant afterwards)."""
        params = dict(model.named_parameters())
        for name, _, _, _ in self.entries:
            norms = block_norms(params[name], self.block_shape)
            self.alphas[name] = (1.0 / (norms + self.config.eps)).to(params[name].device)

    def _due(self, unit: int) -> bool:
        if unit == self._last_unit:
            return False
        cfg = self.config
        return unit in cfg.milestones or bool(cfg.reweight_every and unit > 0
                                              and unit % cfg.reweight_every == 0)

    def __call__(self, model: torch.nn.Module, epoch: int, step: int) -> torch.Tensor:
        unit = epoch if self.config.schedule_unit == "epoch" else step
        if self._due(unit):
            self.reweight(model)
            self.reweight_points.append(unit)
        self._last_unit = unit
        params = dict(model.named_parameters())
        total = None
        for name, _, _, lam in self.entries:
            if lam == 0.0:
                continue
            weight = params[name]
            norms = (block_sq_norms(weight, self.block_shape) + _TINY).sqrt()
            # alpha follows the weight if the model moved (finetune moves it to cuda)
            alpha = self.alphas[name].to(device=norms.device, dtype=norms.dtype)
            term = lam * (alpha * norms).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros((), device=next(model.parameters()).device)
        return total


@dataclass(frozen=True)
class PruneResult:
    """The outcome of a pruning pipeline: masks, and what each stage did and took."""

    method: str
    masks: dict[str, Any]  # name -> hwmodels.BlockMask
    stage_seconds: dict[str, float]
    stage_stats: dict[str, TrainStats | None]
    reweight_points: tuple[int, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)


def _prune_then_retrain(model, tokenizer, structure, split, block_shape, ratio,
                        retrain: TrainConfig | None, include_heads: bool, progress: bool,
                        seconds: dict[str, float], desc: str, balance: Any = None):
    """Stage 2 hard pruning, then stage 3 masked retraining unless `retrain` is None or has
    no epochs; records the stage times in `seconds`. Returns (masks, retraining stats)."""
    start = time.perf_counter()
    masks = oneshot_prune(model, structure, block_shape, ratio, include_heads=include_heads,
                          balance=balance)
    seconds["prune"] = time.perf_counter() - start
    stats = None
    if retrain is not None and retrain.epochs > 0:
        stats = finetune(model, tokenizer, split, retrain, masks=masks, progress=progress,
                         desc=desc)
        seconds["retrain"] = stats.seconds
    return masks, stats


def rgl_prune(model: torch.nn.Module, tokenizer: Any, structure: Any, split: Any, *,
              block_shape: tuple[int, int], ratio: PerMatrix,
              rgl: RGLConfig = RGLConfig(), train: TrainConfig = TrainConfig(),
              retrain: TrainConfig | None = TrainConfig(lr=2e-5),
              progress: bool = True) -> PruneResult:
    """Stage 1 RGL training, stage 2 hard pruning, stage 3 masked retraining (None: skip)."""
    seconds: dict[str, float] = {}
    penalty = GroupLassoPenalty(model, structure, block_shape, rgl)
    stage1 = finetune(model, tokenizer, split, train, regularizer=penalty, progress=progress,
                      desc="stage 1: RGL")
    seconds["rgl"] = stage1.seconds
    masks, stage3 = _prune_then_retrain(model, tokenizer, structure, split, block_shape, ratio,
                                        retrain, rgl.include_heads, progress, seconds,
                                        "stage 3: retrain")
    return PruneResult(method="rgl", masks=masks, stage_seconds=seconds,
                       stage_stats={"rgl": stage1, "retrain": stage3},
                       reweight_points=tuple(penalty.reweight_points),
                       settings=_settings(rgl, train, retrain))


def oneshot_pipeline(model: torch.nn.Module, tokenizer: Any, structure: Any, split: Any | None,
                     *, block_shape: tuple[int, int], ratio: PerMatrix,
                     train: TrainConfig | None = None, retrain: TrainConfig | None = None,
                     include_heads: bool = False, progress: bool = True,
                     balance: Any = None) -> PruneResult:
    """Optional dense fine-tuning, one-shot block-magnitude pruning (PE-balanced with
    `balance`, codesign.pruning.balance), optional masked retraining."""
    seconds: dict[str, float] = {}
    stage1 = None
    if train is not None and train.epochs > 0:
        stage1 = finetune(model, tokenizer, split, train, progress=progress,
                          desc="dense fine-tuning")
        seconds["finetune"] = stage1.seconds
    masks, stage3 = _prune_then_retrain(model, tokenizer, structure, split, block_shape, ratio,
                                        retrain, include_heads, progress, seconds,
                                        "masked retraining", balance)
    return PruneResult(method="oneshot", masks=masks, stage_seconds=seconds,
                       stage_stats={"finetune": stage1, "retrain": stage3},
                       settings=_settings(None, train, retrain))


def _settings(rgl: RGLConfig | None, train: TrainConfig | None,
              retrain: TrainConfig | None) -> dict[str, Any]:
    from dataclasses import asdict

    out: dict[str, Any] = {}
    if rgl is not None:
        out["rgl"] = {k: (dict(v) if isinstance(v, Mapping) else v)
                      for k, v in asdict(rgl).items()}
    out["train"] = None if train is None else asdict(train)
    out["retrain"] = None if retrain is None else asdict(retrain)
    return out
