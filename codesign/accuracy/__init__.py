"""Measured GLUE accuracy of block-pruned models, at three fidelities, with a persistent cache.

What is modelled
----------------
Every point starts from ONE dense model fine-tuned on the task (cached as a checkpoint folder in
the cache, so all points of all studies reuse it), then is pruned by a fidelity's procedure
(``oneshot``, ``retrain``, ``rgl``: see ``codesign.accuracy.measurement``) and evaluated on the dev
split. ``ratio`` is the fraction of blocks pruned in every prunable encoder matrix (q, k, v,
attn_out, ffn_in, ffn_out of every layer); embeddings, pooler and classifier stay dense.
``ratio == 0`` is the dense fine-tuned model itself. Each AccuracyRecord carries the dense
baseline beside the pruned figure, the recipe, the seed, the wall time and the mask file of the
pruned model (in the cache folder), so the hardware model runs on the very masks whose accuracy
was measured.

The modules, along the data flow:
``recipe`` (Recipe, its presets, FIDELITIES) -> ``cache`` (AccuracyCache, AccuracyRecord, record
keys) -> ``dense`` (the dense fine-tuned model) -> ``measurement`` (measure, oneshot_masks).

The default Recipe is sized for a 2-core CPU (no GPU). Rates measured here with the machine
idle (all-MiniLM-L6-v2, batch 32): training ~26 examples/s at seq 64 padded (~31 at seq 32;
SST-2's short phrases go faster with dynamic padding), evaluation ~136 dev sentences/s at seq 64.
Measured with the default Recipe on SST-2 (whole dev split, machine at load ~3 from other jobs):
the dense fine-tuning (2,000 examples, 1 epoch, lr 3e-4, seq 64; once per model x task, cached)
took 183 s and reached 0.797 (majority class 0.509); at 16x16, ratio 0.5 a ``oneshot`` point took
3.4 s (0.509), a ``retrain`` point 12.8 s (0.568), an ``rgl`` point 33.5 s (0.601); 1x1 ratio 0.5
``retrain`` 16.1 s (0.797). A default study of ~16 (block, ratio) points at ``retrain`` thus
needs about 4 min plus 1-3 min of dense fine-tuning per task from a cold cache (~9 min plus the
dense model at ``rgl``). On a heavily shared machine (load ~8 on the 2 cores) we measured 3-5x
longer. MiniLM needs a high learning rate at these budgets: dense lr 1e-4 left SST-2 at 0.56
after 20 steps, 3e-4 reached 0.77, 5e-5 stayed at the majority class.

What is ignored / how to scale up
---------------------------------
These recipes are far below the paper's (full training sets, 3 epochs, seq 128): the absolute
scores are low-budget scores and the differences between block shapes are the result, not the
absolute numbers. To scale up, raise ``dense_examples`` / ``retrain_examples`` /
``rgl_examples`` (None = the whole training split), the epochs and ``max_seq_len`` (128 for the
sentence-pair tasks RTE/MRPC/STS-B), e.g. ``Recipe.paper()``; a CUDA GPU is picked automatically by
the training loop. Evaluation always uses the whole dev split unless ``eval_examples`` is set.
Sampling noise (a few hundred dev sentences: +-1-3 points) is not modelled; repeat with other
seeds to see it. The GLUE data files are assumed to be the official ones (they are not part of
the cache key).

No torch import at module level (the CLI imports this package lazily anyway).
"""
from __future__ import annotations

from codesign.accuracy.cache import (CACHE_ENV, AccuracyCache, AccuracyRecord, block_text,
                                     default_cache_path, model_sha256, record_key)
from codesign.accuracy.dense import DenseCheckpoint, dense_checkpoint
from codesign.accuracy.measurement import measure, oneshot_masks
from codesign.accuracy.recipe import (FIDELITIES, PROCEDURE_VERSION, RECIPE_PRESETS,
                                      AccuracyError, Recipe, check_fidelity)

__all__ = [
    "CACHE_ENV", "FIDELITIES", "PROCEDURE_VERSION", "RECIPE_PRESETS",
    "AccuracyCache", "AccuracyError", "AccuracyRecord", "DenseCheckpoint", "Recipe",
    "block_text", "check_fidelity", "default_cache_path", "dense_checkpoint", "measure",
    "model_sha256", "oneshot_masks", "record_key",
]
