"""Measured GLUE accuracy of block-pruned models, at four fidelities, with a persistent cache.

What is modelled
----------------
Every point starts from ONE dense model fine-tuned on the task (cached as a checkpoint folder in
the cache, so all points of all studies reuse it), then is pruned by a fidelity's procedure
(``oneshot``, ``calibrated``, ``retrain``, ``rgl``: see ``codesign.accuracy.measurement``) and
evaluated on the dev split. ``ratio`` is the fraction of blocks pruned in every prunable encoder matrix (q, k, v,
attn_out, ffn_in, ffn_out of every layer); embeddings, pooler and classifier stay dense.
``ratio == 0`` is the dense fine-tuned model itself. Each AccuracyRecord carries the dense
baseline beside the pruned figure, the recipe, the seed, the wall time and the mask file of the
pruned model (in the cache folder), so the hardware model runs on the very masks whose accuracy
was measured.

The modules, along the data flow:
``recipe`` (Recipe, its presets, FIDELITIES) -> ``cache`` (AccuracyCache, AccuracyRecord, record
keys) -> ``dense`` (the dense fine-tuned model) -> ``measurement`` (measure, oneshot_masks) ->
``allocated`` (measure_allocated: latency-aware points, masks allocated on one accelerator).

The default Recipe is sized for a 2-core CPU (no GPU); its measured rates, costs and scores are
stated once, in docs/accuracy.md ("Fidelities and default recipes"). MiniLM needs a higher
learning rate than BERT's usual 2e-5 at these budgets (the default uses 1e-4 dense and
retraining; the quick recipe's few dozen steps, 3e-4 dense).

What is ignored / how to scale up
---------------------------------
These recipes are far below the paper's (full training sets, 3 epochs, seq 128): the absolute
scores are low-budget scores and the differences between block shapes are the result, not the
absolute numbers. To scale up, raise ``dense_examples`` / ``retrain_examples`` /
``rgl_examples`` (None = the whole training split), the epochs and ``max_seq_len`` (128 for the
sentence-pair tasks RTE/MRPC/STS-B), e.g. ``Recipe.paper()``; a CUDA GPU is picked automatically by
the training loop. Evaluation always uses the whole dev split unless ``eval_examples`` is set.
The dev set's sampling noise is shown as a bootstrap interval on every record (see
docs/accuracy.md, "Uncertainty"); the noise of training (seed, sampled subsets) is not. The GLUE
data files are assumed to be the official ones (they are not part of
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
