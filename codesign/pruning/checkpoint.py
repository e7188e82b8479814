"""Prune a checkpoint end to end: GLUE data in, a pruned checkpoint folder with its masks out.

What is modelled: the whole `codesign prune` pipeline as one call. It loads the task's train
split (and, unless asked not to, its dev split), loads the model with a classification head for
the task, runs the chosen pipeline (`rgl`: reweighted group Lasso training, hard pruning, masked
retraining; `oneshot`: optional dense fine-tuning, block-magnitude pruning, optional masked
retraining; `calibrated`: optional dense fine-tuning, calibrated one-shot pruning, at a uniform
ratio or, with a `LatencyTarget`, latency-aware allocation on the simulated accelerator
(`codesign.pruning.allocation`), optional masked retraining), folds the constant outputs of
the heads and FFN neurons the masks remove into the next matrix's bias (`codesign.pruning.fold`:
exact), evaluates the pruned model on the dev split, and writes OUT/ (config.json,
model.safetensors, tokenizer files: loadable with AutoModelForSequenceClassification
.from_pretrained), OUT/masks.safetensors and OUT/prune.json (recipe, per-stage seconds, dev
metrics, density, hashes, what was folded).

What is ignored: nothing is cached (every call trains again; `codesign.accuracy` caches);
errors are the ValueErrors of the parts (CheckpointError, GlueDataError, MaskFileError), one
line each. torch is imported only when the function runs.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwmodels import BlockShape

from codesign.pruning import GLOBAL_MIN_DENSITY, PerMatrix, natural_scope

if TYPE_CHECKING:  # pragma: no cover - annotations only; importing them loads torch
    from codesign.masks import MaskStats
    from codesign.pruning.balance import PEBalance
    from codesign.pruning.rgl import RGLConfig
    from codesign.pruning.train import TrainConfig

METHODS = ("rgl", "oneshot", "calibrated")


@dataclass(frozen=True)
class CalibrationConfig:
    """Settings of `method="calibrated"` (codesign.pruning.calibrate): unlabelled training
    sentences (a seeded sample, seed = train.seed + 3), block saliency ("obs", "norm" or
    "fisher": `codesign.pruning.fisher`), the `scope` of a ratio's ranking ("matrix": every
    matrix loses that fraction; "global", fisher only: the least salient blocks of the whole
    model), damping; `importance` of the latency-aware allocation ("relative": saliency over each
    matrix's output energy; fisher scores are used raw) and its per-matrix floor `min_density`
    (the fraction of blocks every matrix keeps at least; also the floor of the global
    ranking, `codesign.pruning.fisher.global_keep`)."""

    examples: int = 1024
    saliency: str = "fisher"
    fisher_examples: int | None = 256  # fisher: the first this many sentences (None: all)
    scope: str | None = None  # None: the saliency's own (codesign.pruning.natural_scope)
    damping: float = 0.01
    importance: str = "relative"
    # None: codesign.pruning.GLOBAL_MIN_DENSITY for the global ranking,
    # allocation.default_min_density(saliency) for latency-aware allocation
    min_density: float | None = None


@dataclass(frozen=True)
class LatencyTarget:
    """A simulated-latency target for latency-aware allocation: a board preset (or YAML) with
    nested overrides, the simulated workload's sequence length and batch, and exactly one of
    `latency_ms` or `speedup` (over the same accelerator's dense run)."""

    board: str = "zcu102"
    overrides: dict = field(default_factory=dict)
    latency_ms: float | None = None
    speedup: float | None = None
    seq_len: int = 128
    batch: int = 1
    engine: str = "analytical"


@dataclass(frozen=True)
class PrunedCheckpoint:
    """What `prune_checkpoint` wrote and measured."""

    source: str                      # the parent checkpoint, as loaded ("builtin:minilm-l6", ...)
    architecture: str                # its ModelStructure ("bert", "roberta", ...)
    task: str
    method: str                      # "rgl" or "oneshot"
    block_shape: BlockShape
    ratio: PerMatrix                 # a number, or the per-matrix mapping
    train_examples: int
    dev_examples: int | None         # None: not evaluated
    stage_seconds: dict[str, float]  # {"rgl"|"finetune": s, "prune": s, "retrain": s}
    devices: str                     # the devices the training stages ran on, e.g. "cpu"
    dev_metrics: dict[str, float] | None
    headline_metric: str             # the task's official metric name
    stats: MaskStats                 # density, block density, compression of the masks
    n_matrices: int                  # matrices pruned
    checkpoint: Path                 # OUT/
    masks_path: Path                 # OUT/masks.safetensors
    sha256: str                      # of the saved pruned weights
    info_path: Path                  # OUT/prune.json
    allocation: dict | None = None   # latency-aware: target, simulated latency, dense latency
    fold: dict | None = None         # FoldSummary.as_dict(): dead heads / neurons folded


def prune_checkpoint(*, model: str, task: str, block_shape: BlockShape, ratio: PerMatrix,
                     method: str, out_dir: str | Path, train: TrainConfig,
                     retrain: TrainConfig | None, rgl: RGLConfig | None = None,
                     glue_dir: str | Path | None = None, examples: int | None = None,
                     eval_examples: int | None = None, progress: bool = True,
                     calibration: CalibrationConfig | None = None,
                     target: LatencyTarget | None = None,
                     balance: PEBalance | None = None) -> PrunedCheckpoint:
    """Block-prune `model` on GLUE `task` and write the pruned checkpoint to `out_dir`.

    `ratio` is the fraction of blocks pruned per matrix (a number, or a per-matrix mapping, see
    `codesign.pruning.per_matrix_value`). `train` is stage 1 (RGL training, or dense fine-tuning
    for oneshot; 0 epochs = none), `retrain` the masked retraining (None or 0 epochs = none);
    the data subset seed, sequence length and batch size are `train`'s. `rgl` configures the
    penalty (default RGLConfig()). `examples` takes a seeded random subset of the train split;
    `eval_examples` of the dev split (0 = do not evaluate). `method="calibrated"` reads
    `calibration` (default CalibrationConfig()); with `target` the blocks are allocated to meet
    the simulated latency and `ratio` is ignored (None allowed). `balance` (oneshot and
    calibrated at a ratio): PE-balanced blocks (codesign.pruning.balance).
    """
    from codesign.checkpoints import load_model
    from codesign.glue import headline_metric, load_split
    from codesign.pruning.fold import fold_dead_structure

    _check_request(method, ratio, calibration, target, balance)
    train_split = load_split(task, "train", glue_dir=glue_dir, limit=examples, seed=train.seed)
    dev_split = None
    if eval_examples != 0:
        dev_split = load_split(task, "dev", glue_dir=glue_dir, limit=eval_examples,
                               seed=train.seed)
    loaded = load_model(model, task=task)
    start = time.perf_counter()
    if method == "calibrated":
        result = _calibrated_pipeline(loaded, train_split, task=task, glue_dir=glue_dir,
                                      block_shape=block_shape, ratio=ratio, train=train,
                                      retrain=retrain, calibration=calibration or
                                      CalibrationConfig(), target=target, progress=progress,
                                      balance=balance)
    else:
        result = _run_pipeline(loaded, train_split, block_shape=block_shape, ratio=ratio,
                               method=method, train=train, retrain=retrain, rgl=rgl,
                               progress=progress, balance=balance)
    folded = fold_dead_structure(loaded.model, result.masks, loaded.structure)
    result, fold = dataclasses.replace(result, masks=folded.masks), folded.as_dict()
    metrics = _evaluate(loaded, task, dev_split, train)
    seconds = time.perf_counter() - start
    loaded.model.to("cpu")
    allocation = result.settings.get("allocation")
    extra = {"allocation": allocation} if allocation else {}
    if balance is not None:
        extra["balance"] = result.settings["balance"] = {"pe_columns": balance.cols}
    saved, stats = _save(out_dir, loaded, result, task=task, ratio=ratio, extra=extra or None)
    info = {"model": loaded.source, "model_sha256": loaded.sha256, "task": task,
            "method": method, "block_shape": str(block_shape), "ratio": ratio,
            "train_examples": len(train_split), "dev_examples":
                None if dev_split is None else len(dev_split),
            "stage_seconds": result.stage_seconds, "seconds": seconds,
            "settings": result.settings, "reweight_points": list(result.reweight_points),
            "dev_metrics": metrics, "density": stats.density,
            "compression": stats.compression, "checkpoint_sha256": saved["sha256"],
            "allocation": allocation, "fold": fold}
    info_path = saved["checkpoint"] / "prune.json"
    with open(info_path, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, default=str)
    devices = {s.device for s in result.stage_stats.values() if s is not None}
    return PrunedCheckpoint(
        source=loaded.source, architecture=loaded.structure.architecture, task=task,
        method=method, block_shape=block_shape, ratio=ratio,
        train_examples=len(train_split), dev_examples=info["dev_examples"],
        stage_seconds=dict(result.stage_seconds), devices=", ".join(sorted(devices)) or "cpu",
        dev_metrics=metrics, headline_metric=headline_metric(task), stats=stats,
        n_matrices=len(result.masks), checkpoint=saved["checkpoint"], masks_path=saved["masks"],
        sha256=saved["sha256"], info_path=info_path, allocation=allocation, fold=fold)


def _run_pipeline(loaded: Any, train_split: Any, *, block_shape: BlockShape, ratio: PerMatrix,
                  method: str, train: TrainConfig, retrain: TrainConfig | None,
                  rgl: RGLConfig | None, progress: bool, balance: PEBalance | None = None) -> Any:
    """The chosen pipeline on the loaded model (in place); returns its rgl.PruneResult."""
    from codesign.pruning.rgl import RGLConfig, oneshot_pipeline, rgl_prune

    if method == "rgl":
        return rgl_prune(loaded.model, loaded.tokenizer, loaded.structure, train_split,
                         block_shape=block_shape, ratio=ratio, rgl=rgl or RGLConfig(), train=train,
                         retrain=retrain, progress=progress)
    return oneshot_pipeline(loaded.model, loaded.tokenizer, loaded.structure, train_split,
                            block_shape=block_shape, ratio=ratio, train=train, retrain=retrain,
                            progress=progress, balance=balance)


def _evaluate(loaded: Any, task: str, dev_split: Any | None,
              train: TrainConfig) -> dict[str, float] | None:
    """The task's official metrics of the pruned model on `dev_split` (None when not given)."""
    if dev_split is None:
        return None
    from codesign.glue import compute_metrics
    from codesign.pruning.train import evaluate

    preds = evaluate(loaded.model, loaded.tokenizer, dev_split, max_seq_len=train.max_seq_len,
                     batch_size=max(64, train.batch_size))
    return compute_metrics(task, preds, dev_split.labels)


def _save(out_dir: str | Path, loaded: Any, result: Any, *, task: str, ratio: PerMatrix,
          extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], MaskStats]:
    """save_pruned (checkpoint + masks.safetensors) and the statistics of the masks."""
    from codesign.masks import mask_statistics
    from codesign.pruning import save_pruned

    saved = save_pruned(out_dir, loaded.model, loaded.tokenizer, loaded.structure, result.masks,
                        metadata={"method": result.method, "ratio": ratio, "task": task,
                         "parent_checkpoint": loaded.source, "parent_sha256": loaded.sha256,
                                  **(extra or {})})
    roles = {n: (layer, r) for n, layer, r in loaded.structure.prunable(
        list(result.masks), include_heads=True)}
    return saved, mask_statistics(result.masks, roles=roles)


def _calibrated_pipeline(loaded: Any, train_split: Any, *, task: str, glue_dir: Any,
                         block_shape: BlockShape, ratio: PerMatrix | None, train: TrainConfig,
                         retrain: TrainConfig | None, calibration: CalibrationConfig,
                         target: LatencyTarget | None, progress: bool,
                         balance: PEBalance | None = None) -> Any:
    """Optional dense fine-tuning, calibrated pruning (uniform, or allocated to `target`),
    optional masked retraining; an rgl.PruneResult (settings carry the allocation)."""
    from dataclasses import asdict

    from codesign.glue import load_split
    from codesign.pruning.calibrate import calibrate_prune, tokenise_calibration
    from codesign.pruning.fisher import fisher_prune
    from codesign.pruning.rgl import PruneResult
    from codesign.pruning.train import finetune

    seconds: dict[str, float] = {}
    stats: dict[str, Any] = {"finetune": None, "retrain": None}
    if train.epochs > 0:
        stats["finetune"] = finetune(loaded.model, loaded.tokenizer, train_split, train,
                                     progress=progress, desc="dense fine-tuning")
        seconds["finetune"] = stats["finetune"].seconds
    calib = load_split(task, "train", glue_dir=glue_dir, limit=calibration.examples,
                       seed=train.seed + 3)
    batches = tokenise_calibration(loaded.tokenizer, calib, max_seq_len=train.max_seq_len,
                                   batch_size=train.batch_size)
    settings: dict[str, Any] = {"calibration": asdict(calibration),
                                "train": asdict(train), "retrain": asdict(retrain) if retrain
                                else None}
    start = time.perf_counter()
    if target is None and calibration.saliency == "fisher":
        masks = fisher_prune(loaded.model, loaded.structure, block_shape=block_shape,
                             ratio=_single_ratio(ratio), calibration=batches,
                             scope=calibration.scope or natural_scope(calibration.saliency),
                             damping=calibration.damping, balance=balance,
                             min_density=(GLOBAL_MIN_DENSITY if calibration.min_density is None
                                          else calibration.min_density),
                             fisher_examples=calibration.fisher_examples, threads=train.threads)
    elif target is None:
        masks = calibrate_prune(loaded.model, loaded.structure, block_shape=block_shape,
                                ratio=ratio, calibration=batches, saliency=calibration.saliency,
                                damping=calibration.damping, threads=train.threads,
                                balance=balance).masks
    else:
        masks, settings["allocation"] = _allocate(loaded, block_shape, batches, calibration,
                                                  target, train.threads)
    seconds["prune"] = time.perf_counter() - start
    if retrain is not None and retrain.epochs > 0:
        stats["retrain"] = finetune(loaded.model, loaded.tokenizer, train_split, retrain,
                                    masks=masks, progress=progress, desc="masked retraining")
        seconds["retrain"] = stats["retrain"].seconds
    return PruneResult(method="calibrated", masks=masks, stage_seconds=seconds,
                       stage_stats=stats, settings=settings)


def _check_request(method: str, ratio: PerMatrix | None, calibration: CalibrationConfig | None,
                   target: LatencyTarget | None, balance: PEBalance | None) -> None:
    """One-line errors for a combination `prune_checkpoint` cannot run."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {', '.join(METHODS)}")
    if target is not None and method != "calibrated":
        raise ValueError("a latency target needs method calibrated")
    if ratio is None and target is None:
        raise ValueError("give a prune ratio, or a latency target (method calibrated)")
    if calibration is not None and calibration.scope == "global" and (
            calibration.saliency != "fisher"):  # (a None scope is the saliency's own)
        raise ValueError(f"scope global needs saliency fisher (the {calibration.saliency} scores "
                         "of different matrices do not compare); use --scope matrix")
    if balance is not None and (method == "rgl" or target is not None):
        raise ValueError("balance: PE-balanced blocks go with oneshot or calibrated at a ratio")


def _single_ratio(ratio: PerMatrix | None) -> float:
    """The one prune ratio Fisher ranking takes (a per-matrix ratio is a ValueError)."""
    if isinstance(ratio, (int, float)):
        return float(ratio)
    raise ValueError("saliency fisher: give one prune ratio (--ratio), not per-matrix ratios")


def _allocate(loaded: Any, block_shape: BlockShape, batches: Any, calibration: CalibrationConfig,
              target: LatencyTarget, threads: int | None) -> tuple[dict[str, Any], dict]:
    """Latency-aware calibrated pruning of `loaded.model` in place; masks and a summary."""
    import hwmodels
    from hwmodels.costs import build_costs

    from codesign.pruning.latency_aware import latency_aware_prune
    from codesign.workload import encoder_workload

    acc = hwmodels.load_board(target.board, target.overrides or None)
    names = [n for n, _, _ in loaded.structure.prunable(loaded.model)]
    workload = encoder_workload(loaded.model.config.to_dict(), target.seq_len, target.batch,
                                mask_names=names)
    table = build_costs(workload, acc, block_shape, engine=target.engine)
    done = latency_aware_prune(loaded.model, loaded.structure, table=table, calibration=batches,
                               latency_ms=target.latency_ms, speedup=target.speedup,
                               saliency=calibration.saliency, importance=calibration.importance,
                               damping=calibration.damping,
                               min_density=calibration.min_density,
                               fisher_examples=calibration.fisher_examples, threads=threads)
    a = done.allocation
    summary = {"board": target.board, "overrides": dict(target.overrides or {}),
               "accelerator": acc.name, "seq_len": target.seq_len, "batch": target.batch,
               "engine": target.engine, "target_latency_ms": target.latency_ms,
               "target_speedup": target.speedup, "target_ms": a.target_ms,
               "latency_ms": a.latency_ms, "dense_ms": a.dense_ms, "speedup": a.speedup,
               "block_density": a.block_density, "moves": a.moves, "trimmed": a.trimmed,
               "swaps": a.swaps, "removed_importance": a.removed_importance,
               "total_importance": a.total_importance, "seconds": done.seconds}
    return a.masks, summary


__all__ = ["CalibrationConfig", "LatencyTarget", "METHODS", "PrunedCheckpoint",
           "prune_checkpoint"]
