"""How training and evaluation turn a GLUE split into padded batches, and the run settings that
make a CPU run fast and repeatable (threads, deterministic algorithms).

What is modelled
* Tokenisation, cached in this process once per (tokenizer, task, split, max_seq_len): each
  sentence (pair) is tokenised once and served from memory to every later stage of the process
  (dense fine-tuning, retraining, every evaluation). Subsets of a split reuse the entries of the
  sentences they hold. Not on disk: tokenising a few thousand sentences takes well under a second.
* Three batching modes (`BATCHING_MODES`):
  ``bucket`` (the default): each epoch, the examples are shuffled, then stably sorted by length
  (so equal lengths stay shuffled), cut into batches of consecutive lengths, and the batches
  are visited in a shuffled order; each batch is padded to its own longest example.
  ``longest``: shuffled batches padded to their longest example (the previous default).
  ``max_length``: shuffled batches padded to max_seq_len (the authors' GLUE script).
  Every random draw comes from one torch.Generator seeded by the run's seed; ``longest`` and
  ``max_length`` draw exactly what the previous training loop drew (one randperm per epoch).
* Evaluation order: length-sorted batches (less padding), predictions put back in input order.

What is ignored: dynamic batch sizes by token count (a batch always holds `batch_size`
examples, the last one fewer), and left padding (rows are padded by the tokenizer's own
`pad`, so its padding side is honoured, but lengths are counted the same either way).
"""
from __future__ import annotations

import hashlib
import os
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

BATCHING_MODES: tuple[str, ...] = ("bucket", "longest", "max_length")
THREADS_ENV = "CODESIGN_THREADS"
Feature = dict[str, list[int]]
_ENCODED: OrderedDict[tuple[Any, ...], dict[tuple[str, str | None], Feature]] = OrderedDict()
_MAX_CACHED_SPLITS = 16  # (tokenizer, task, split, max_seq_len) entries kept in memory
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def check_batching(mode: str) -> str:
    """`mode` itself if it is one of BATCHING_MODES, else a one-line ValueError."""
    if mode not in BATCHING_MODES:
        raise ValueError(f"batching {mode!r}: choose one of {', '.join(BATCHING_MODES)}")
    return mode


def default_threads() -> int:
    """torch intra-op threads when none are given: ``$CODESIGN_THREADS`` if set, else the CPUs
    this process may run on (os.sched_getaffinity where the platform has it, else
    os.cpu_count()). On a machine shared with other jobs, 1 is much faster (docs/accuracy.md)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"${THREADS_ENV}={text!r}: set a positive thread count or unset it")
        return int(text)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch on `count` intra-op threads for the duration, restored after (None:
    `default_threads()`, so ``$CODESIGN_THREADS`` holds for every stage, as for training)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(int(count) if count else default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def run_settings(threads: int | None, device: torch.device) -> Iterator[int]:
    """For the duration of a run: `threads` torch threads (None: `default_threads()`), and, on a
    CPU, torch's deterministic algorithms. Both are restored afterwards; yields the thread count.

    On a CPU, the same seed at the same thread count then gives bit-identical weights (tested).
    CUDA is left non-deterministic (its deterministic mode needs CUBLAS_WORKSPACE_CONFIG set
    before the process starts).
    """
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    count = int(threads) if threads else default_threads()
    with torch_threads(count):
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        try:
            yield count
        finally:
            torch.use_deterministic_algorithms(previous_det, warn_only=previous_warn)


# --- tokenisation cache -----------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides a tokenizer's output: its class, vocabulary and normalisation
    options (memoised per tokenizer object)."""
    try:
        return _FINGERPRINTS[tokenizer]
    except (KeyError, TypeError):
        pass
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    for token, index in sorted(tokenizer.get_vocab().items()):
        digest.update(f"{token}\t{index}\n".encode())
    options = {k: v for k, v in sorted(getattr(tokenizer, "init_kwargs", {}).items())
               if isinstance(v, (bool, int, str)) or v is None}
    digest.update(repr(options).encode())
    text = digest.hexdigest()[:16]
    try:
        _FINGERPRINTS[tokenizer] = text
    except TypeError:  # not weak-referenceable: recomputed next time
        pass
    return text


def encode(tokenizer: Any, split: Any, max_seq_len: int) -> list[Feature]:
    """The split's examples tokenised (truncated to `max_seq_len`, unpadded), in split order.

    Served from the in-process cache keyed by (tokenizer, task, split, max_seq_len); only the
    sentences not seen before are tokenised.
    """
    key = (tokenizer_fingerprint(tokenizer), getattr(split, "task", ""),
           getattr(split, "split", ""), int(max_seq_len))
    known = _ENCODED.get(key)
    if known is None:
        known = _ENCODED[key] = {}
        while len(_ENCODED) > _MAX_CACHED_SPLITS:
            _ENCODED.popitem(last=False)
    _ENCODED.move_to_end(key)
    pairs = list(zip(split.text_a, split.text_b or [None] * len(split.text_a)))
    missing = list(dict.fromkeys(p for p in pairs if p not in known))
    if missing:
        known.update(zip(missing, _tokenize(tokenizer, missing, max_seq_len)))
    return [known[p] for p in pairs]


def clear_encode_cache() -> None:
    """Forget every cached tokenisation (tests, memory)."""
    _ENCODED.clear()


def _tokenize(tokenizer: Any, pairs: Sequence[tuple[str, str | None]],
              max_seq_len: int) -> list[Feature]:
    text_a = [a for a, _ in pairs]
    args = (text_a,) if pairs[0][1] is None else (text_a, [b for _, b in pairs])
    enc = tokenizer(*args, truncation=True, max_length=max_seq_len, padding=False)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(pairs))]


# --- batches ----------------------------------------------------------------------------------


def lengths_of(features: Sequence[Feature]) -> np.ndarray:
    """Token count of each example (int64)."""
    return np.asarray([len(f["input_ids"]) for f in features], dtype=np.int64)


def epoch_batches(lengths: np.ndarray, batch_size: int, mode: str,
                  generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches (example indices) in visiting order; every example exactly once.

    ``bucket``: shuffle, stable sort by length, cut into batches, shuffle the batch order.
    ``longest`` / ``max_length``: shuffle, cut (padding differs, not the order).
    """
    n = len(lengths)
    order = torch.randperm(n, generator=generator).tolist()
    if check_batching(mode) != "bucket":
        return [order[first:first + batch_size] for first in range(0, n, batch_size)]
    shuffled = np.asarray(order, dtype=np.int64)
    by_length = shuffled[np.argsort(lengths[shuffled], kind="stable")].tolist()
    batches = [by_length[first:first + batch_size] for first in range(0, n, batch_size)]
    visit = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in visit]


def collate(tokenizer: Any, features: Sequence[Feature], device: torch.device,
            pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """One batch as tensors on `device`: padded to `pad_to` tokens, or to its longest example."""
    if pad_to:
        batch = tokenizer.pad(list(features), padding="max_length", max_length=pad_to,
                              return_tensors="pt")
    else:
        batch = tokenizer.pad(list(features), padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def eval_order(lengths: np.ndarray, sort_by_length: bool) -> np.ndarray:
    """The order evaluation visits the examples in: by length (stable), or as given."""
    if sort_by_length:
        return np.argsort(lengths, kind="stable")
    return np.arange(len(lengths))
