"""One honest accuracy check on real data: fine-tuning learns SST-2, heavy pruning hurts.

The dense model fine-tuned on 640 SST-2 sentences (seq 32, one epoch) must beat the
majority-class baseline on the whole dev split by a clear margin, and one-shot 16x16 block
pruning of 90% of every encoder matrix (no retraining) must lose a clear part of that.
"""
from __future__ import annotations

import numpy as np
import pytest

from codesign.accuracy import AccuracyCache, Recipe, dense_checkpoint, measure
from codesign.glue import load_split

pytestmark = pytest.mark.slow

RECIPE = Recipe(max_seq_len=32, batch_size=32, dense_examples=640, dense_epochs=1,
                dense_lr=3e-4, eval_examples=None, seed=0)


def test_dense_beats_majority_and_heavy_oneshot_pruning_hurts(glue_dir, tmp_path):
    cache = AccuracyCache(tmp_path)
    dev = load_split("sst2", "dev", glue_dir=glue_dir)
    majority = np.bincount(dev.labels).max() / len(dev)  # 444/872 = 0.509
    dense = dense_checkpoint("minilm-l6", "sst2", RECIPE, glue_dir=glue_dir, cache=cache)
    assert dense.dev_examples == len(dev) == 872
    assert dense.score > majority + 0.15, f"dense {dense.score:.3f} vs majority {majority:.3f}"
    rec = measure("minilm-l6", "sst2", "16x16", 0.9, "oneshot", RECIPE, glue_dir=glue_dir,
                  cache=cache)
    # round(0.9 * nblocks) per matrix: 58 of 576 and 230 of 2,304 blocks kept
    assert rec.dense == dense.score and rec.density == pytest.approx(0.1, abs=0.002)
    assert rec.pruned < dense.score - 0.10, f"pruned {rec.pruned:.3f} vs dense {dense.score:.3f}"
