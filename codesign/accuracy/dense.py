"""The dense model fine-tuned on a task, shared by every point of every study, and the GLUE
training/evaluation adapters the measurement stages share.

What is modelled: the base checkpoint's identity (sha256 of its weights), one fine-tuning of it
per (model, task, dense recipe fields), saved as a ``save_pretrained`` folder under the cache's
``dense/`` with a ``dense.json`` of its dev metrics; made under an inter-process file lock and
moved into place atomically, so two workers never fine-tune the same model and an interrupted
run leaves nothing half-written. Each training stage draws its own seeded sample of the train
split; evaluation uses the dev split (or ``recipe.eval_examples`` of it). The new classification
head is initialised from ``recipe.seed`` and training is deterministic at a given thread count
(``dense.json`` records the threads and the batching), so two cold runs give one model.

What is ignored: the GLUE files' identity (not hashed), and the device (recorded, not keyed).
No torch import at module level.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from codesign.accuracy.cache import AccuracyCache, model_sha256
from codesign.accuracy.recipe import Recipe
from codesign.glue import GlueSplit, compute_metrics, get_task, load_split
from codesign.hashing import short_hash

_EVAL_BATCH = 64


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (records' `created`)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DenseCheckpoint:
    """The dense model fine-tuned on a task (a save_pretrained folder in the cache)."""

    path: Path
    task: str
    metric: str
    metrics: dict[str, float]
    seconds: float  # fine-tuning + evaluation wall time when it was made
    model: str
    model_sha256: str
    recipe: dict[str, Any]
    dev_examples: int
    device: str

    @property
    def score(self) -> float:
        return self.metrics[self.metric]


def dev_split(task: str, recipe: Recipe, glue_dir: Any) -> GlueSplit:
    """The dev examples every stage is evaluated on (the whole split unless eval_examples)."""
    return load_split(task, "dev", glue_dir=glue_dir, limit=recipe.eval_examples, seed=recipe.seed)


def train_split(task: str, limit: int | None, recipe: Recipe, glue_dir: Any,
                stage: int) -> GlueSplit:
    """`limit` train examples drawn with seed ``recipe.seed + stage`` (None: the whole split)."""
    # each stage draws its own seeded sample, so retraining does not only replay the examples
    # the dense model was fine-tuned on
    return load_split(task, "train", glue_dir=glue_dir, limit=limit, seed=recipe.seed + stage)


def train_config(recipe: Recipe, examples: int | None, epochs: int, lr: float) -> Any:
    """The pruning package's TrainConfig for one stage of `recipe`."""
    from codesign.pruning.train import TrainConfig

    return TrainConfig(epochs=epochs, lr=lr, batch_size=recipe.batch_size,
                       max_seq_len=recipe.max_seq_len, seed=recipe.seed, max_examples=examples)


def evaluate_dev(model: Any, tokenizer: Any, task: str, dev: GlueSplit,
                 recipe: Recipe) -> dict[str, float]:
    """The official GLUE metrics of `model` on `dev` (class ids, or STS-B's regression output),
    with the 95% percentile-bootstrap interval of the headline metric over the dev examples
    (codesign.glue.bootstrap_interval: 1000 resamples, seed 0) under the keys
    ``interval_keys(headline)``, e.g. ``accuracy_low`` / ``accuracy_high``: the interval travels
    with the metrics into dense.json and every AccuracyRecord. Scored in the model's own dtype
    (fp32: nothing here casts it)."""
    import numpy as np

    from codesign.glue import bootstrap_interval, interval_keys
    from codesign.pruning.train import evaluate

    preds = np.asarray(evaluate(model, tokenizer, dev, max_seq_len=recipe.max_seq_len,
                                batch_size=_EVAL_BATCH))
    if preds.ndim == 2:  # logits: class ids, or the regression output column
        preds = preds[:, 0] if preds.shape[1] == 1 else preds.argmax(axis=1)
    metrics = compute_metrics(task, preds, dev.labels)
    headline = get_task(task).headline
    low, high = bootstrap_interval(task, preds, dev.labels)
    return {**metrics, **dict(zip(interval_keys(headline), (low, high)))}


def device_of(model: Any) -> str:
    """The device of a model's first parameter ("cpu" when it has none)."""
    try:
        return str(next(model.parameters()).device)
    except (StopIteration, AttributeError):
        return "cpu"


def dense_dir(model: str, task: str, recipe: Recipe, cache: AccuracyCache) -> Path:
    """The cache folder of `model` fine-tuned on `task` by `recipe`'s dense fields; it holds
    ``dense.json`` once the model is trained (nothing is trained or written here)."""
    name = (f"{model_sha256(model)[:16]}-{get_task(task).name}-"
            f"{short_hash(recipe.dense_fields(), 12)}")
    return cache.dense_dir / name


def dense_checkpoint(model: str, task: str, recipe: Recipe | None = None, *, glue_dir: Any = None,
                     cache: AccuracyCache | None = None, progress: bool = False) -> DenseCheckpoint:
    """The dense model fine-tuned on `task` by `recipe`, trained once and then served from the cache."""
    recipe = Recipe() if recipe is None else recipe
    cache = AccuracyCache() if cache is None else cache
    spec = get_task(task)
    sha = model_sha256(model)
    final = dense_dir(model, spec.name, recipe, cache)
    info = final / "dense.json"
    if not info.is_file():
        with cache.lock(f"dense-{final.name}"):
            if not info.is_file():  # another process may have made it while we waited
                _fine_tune_dense(model, spec.name, recipe, glue_dir, final, sha, progress)
    data = json.loads(info.read_text())
    return DenseCheckpoint(path=final, task=spec.name, metric=data["metric"],
                           metrics=data["metrics"], seconds=data["seconds"], model=model,
                           model_sha256=sha, recipe=data["recipe"],
                           dev_examples=data["dev_examples"], device=data.get("device", ""))


def _fine_tune_dense(model: str, task: str, recipe: Recipe, glue_dir: Any, final: Path, sha: str,
                     progress: bool) -> None:
    """Fine-tune, evaluate and save the dense model into `final` (atomically, with dense.json)."""
    from codesign.checkpoints import load_model, quiet_transformers
    from codesign.pruning.train import finetune

    t0 = time.perf_counter()
    train = train_split(task, recipe.dense_examples, recipe, glue_dir, stage=0)
    dev = dev_split(task, recipe, glue_dir)
    loaded = load_model(model, task=task, head_seed=recipe.seed)
    passes = recipe.dense_passes(len(train))
    stats = finetune(loaded.model, loaded.tokenizer, train,
                     train_config(recipe, recipe.dense_examples, passes, recipe.dense_lr),
                     progress=progress)
    metrics = evaluate_dev(loaded.model, loaded.tokenizer, task, dev, recipe)
    seconds = time.perf_counter() - t0
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with quiet_transformers():  # no "Writing model shards" bar from library code
            loaded.model.save_pretrained(tmp)
            loaded.tokenizer.save_pretrained(tmp)
        (tmp / "dense.json").write_text(json.dumps({
            "model": model, "model_sha256": sha, "source": loaded.source, "task": task,
            "metric": get_task(task).headline, "metrics": metrics, "seconds": seconds,
            "recipe": recipe.dense_fields(), "train_examples": len(train), "passes": passes,
            "dev_examples": len(dev), "device": device_of(loaded.model),
            "threads": stats.threads, "batching": stats.extra.get("batching"),
            "created": utc_now()}, indent=1, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)  # a stale folder without dense.json
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
