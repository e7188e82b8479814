"""The teacher of distilled recovery: the cached dense model's logits on a stage's training
examples, computed once and kept on disk in the accuracy cache.

What is modelled: one float32 .npy file of logits [examples, outputs] per (dense checkpoint,
task, training examples, max_seq_len), under the cache's ``teacher/`` folder. The dense
checkpoint is named by its cache folder (base model hash, task and dense recipe hash); the
examples by a hash of their sentences, in order, so the same sample drawn again finds the same
file. The dense model runs only when the file is missing (under an inter-process lock, written
to a temporary name and moved into place), in eval mode (no dropout), with length-sorted
batches; the student's training then looks rows up by example index and never runs it.

What is ignored: the dense checkpoint's bytes (its folder name stands for them, as for the
records that use it) and the device the logits were computed on (float rounding only).
No torch import at module level.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from codesign.accuracy.cache import AccuracyCache, atomic_file
from codesign.accuracy.dense import DenseCheckpoint
from codesign.hashing import short_hash

log = logging.getLogger("codesign")
_BATCH = 64


def examples_hash(split: Any) -> str:
    """A 16-hex-digit hash of a split's sentences in order (text_a, and text_b where present)."""
    return short_hash({"text_a": list(split.text_a),
                       "text_b": None if split.text_b is None else list(split.text_b)})


def teacher_path(dense: DenseCheckpoint, split: Any, max_seq_len: int,
                 cache: AccuracyCache) -> Path:
    """Where the teacher logits of `dense` on `split` at `max_seq_len` live in `cache`."""
    name = f"{dense.path.name}-{dense.task}-{examples_hash(split)}-s{int(max_seq_len)}.npy"
    return cache.root / "teacher" / name


def teacher_logits(dense: DenseCheckpoint, split: Any, *, max_seq_len: int,
                   cache: AccuracyCache) -> np.ndarray:
    """The dense model's float32 logits on `split` (row i = example i), from the cache or
    computed once and cached. A file of the wrong shape is an error naming it and the fix."""
    path = teacher_path(dense, split, max_seq_len, cache)
    if not path.is_file():
        with cache.lock(f"teacher-{path.stem}"):
            if not path.is_file():  # another process may have written it while we waited
                _write(path, _compute(dense, split, max_seq_len))
    logits = np.load(path)
    if logits.ndim != 2 or logits.shape[0] != len(split.text_a):
        raise ValueError(f"{path}: teacher logits of shape {logits.shape} for "
                         f"{len(split.text_a)} examples; delete the file to recompute it")
    return logits


def _compute(dense: DenseCheckpoint, split: Any, max_seq_len: int) -> np.ndarray:
    """Run the dense checkpoint over `split` once (eval mode); its logits."""
    from codesign.checkpoints import load_model
    from codesign.pruning.train import predict_logits

    log.info("teacher logits: %s on %d %s examples", dense.path.name, len(split.text_a),
             dense.task)
    loaded = load_model(dense.path, task=dense.task)
    return predict_logits(loaded.model, loaded.tokenizer, split, max_seq_len=max_seq_len,
                          batch_size=_BATCH).astype(np.float32)


def _write(path: Path, logits: np.ndarray) -> None:
    """Save under a temporary name, then move into place (no half-written file is ever seen)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(logits, dtype=np.float32))
