"""Block-structured pruning of BERT-family models (Li et al., Findings of EMNLP 2020).

Modules: `blocks` (block norms with zero padding, percentile masks), `train` (the one training
loop: dense fine-tuning, the RGL regulariser hook, fixed-mask retraining), `rgl` (the three-stage
reweighted group Lasso pipeline). This module holds what every stage shares: per-matrix settings
(ratios, lambdas) and one-shot block-magnitude pruning (stage 2 on its own, no training);
`checkpoint` runs the whole `codesign prune` pipeline (`prune_checkpoint`).

What is ignored: the embeddings are never pruned (the paper prunes the encoder's weight
matrices); head matrices (pooler, classifier) only when asked; biases are never pruned.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwmodels.sparsity import BlockMask

from codesign.errors import first_line

PerMatrix = float | Mapping[Any, float]


#: how far a calibrated ranking of blocks reaches: every matrix loses the ratio ("matrix"), or
#: the least salient blocks of the whole model go ("global"; codesign.pruning.fisher)
SCOPES: tuple[str, ...] = ("matrix", "global")

#: the global ranking's default per-matrix floor (`fisher.global_keep`): every matrix keeps at
#: least this fraction of its blocks (16x16 at 5x on SST-2: 0.650 without, 0.798 with it;
#: docs/accuracy.md, "Calibration size and floor")
GLOBAL_MIN_DENSITY = 0.05


def natural_scope(saliency: str) -> str:
    """The scope a saliency ranks in unless told otherwise: "global" for fisher (its scores are
    in units of the task loss, comparable across matrices), "matrix" for norm and obs."""
    return "global" if saliency == "fisher" else "matrix"


def per_matrix_value(spec: PerMatrix, name: str, layer: int, role: str, what: str = "value",
                     ) -> float:
    """The setting for one matrix from a number or a mapping.

    Mapping keys, most specific first: the full parameter name, the layer index (int or digit
    string), the role ("q", "ffn_in", ...), then "default". A mapping without a match and without
    "default" is an error (one line naming the matrix).
    """
    if not isinstance(spec, Mapping):
        return float(spec)
    for key in (name, layer, str(layer), role, "default"):
        if key in spec:
            return float(spec[key])
    raise ValueError(f"{what}: no entry for {name} (layer {layer}, role {role}) and no "
                     "'default' key: add one")


def read_per_matrix_file(path: str | Path, *, default: float, what: str) -> dict[Any, float]:
    """A per-matrix setting file: a YAML/JSON mapping {layer | role | parameter name | default:
    number} (see `per_matrix_value`); "default" is added from `default` when absent.

    ValueError (one line naming `what` and the file) when it cannot be read or is not such a
    mapping.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as err:
        raise ValueError(f"{what} file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{what} file {path}: not valid YAML/JSON "
                         f"({first_line(err)})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise ValueError(f"{what} file {path}: expected a mapping of layer index, role or "
                         "parameter name (or 'default') to a number")
    data.setdefault("default", default)
    return data


def oneshot_prune(model: Any, structure: Any, block_shape: tuple[int, int], ratio: PerMatrix, *,
                  include_heads: bool = False, balance: Any = None) -> dict[str, BlockMask]:
    """Zero, in place, the blocks with the smallest L2 norms of every prunable matrix.

    `ratio` is a number (the same for every matrix, the paper's setting) or a per-matrix mapping
    (see `per_matrix_value`); each matrix keeps all but round(ratio * nblocks) of its blocks.
    Blocks are ranked by their plain L2 norm, as in the paper: with a shape that does not divide
    the matrix, the edge blocks hold fewer weights, so the weight density can differ from
    1 - ratio by up to the edge row/column's share (256x1 on 384 rows: 0.5 -> 0.66).
    `balance` (a `codesign.pruning.balance.PEBalance`, None: off) keeps the same count balanced
    over the PE-column groups of compaction (the same kept count per matrix, see `balance`).
    Returns the masks keyed by the parameter's checkpoint name.
    """
    import torch

    from codesign.pruning.balance import keep_blocks
    from codesign.pruning.blocks import block_norms, expand

    params = dict(model.named_parameters())
    masks: dict[str, BlockMask] = {}
    with torch.no_grad():
        for name, layer, role in structure.prunable(params, include_heads=include_heads):
            weight = params[name]
            r = per_matrix_value(ratio, name, layer, role, what="prune ratio")
            keep = keep_blocks(block_norms(weight, block_shape), r, balance=balance,
                               matrix_shape=tuple(weight.shape), block_shape=block_shape)
            weight.mul_(expand(keep, block_shape, tuple(weight.shape)).to(weight.device,
                                                                          weight.dtype))
            masks[name] = BlockMask(grid=keep.numpy(), block_shape=tuple(block_shape),
                                    matrix_shape=tuple(weight.shape))
    if not masks:
        raise ValueError(f"no prunable matrices found for the {structure.architecture} layout")
    return masks


def apply_masks(model: Any, masks: Mapping[str, BlockMask]) -> dict[str, Any]:
    """Zero the pruned blocks in place; returns {name: element mask tensor} on each weight's device.

    A mask whose name is not a parameter, or whose matrix shape differs, is an error.
    """
    import torch

    params = dict(model.named_parameters())
    dense: dict[str, Any] = {}
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in params:
                raise ValueError(f"mask for {name}: no such parameter in the model")
            weight = params[name]
            if tuple(weight.shape) != tuple(mask.matrix_shape):
                raise ValueError(f"mask for {name}: matrix shape {tuple(mask.matrix_shape)} but "
                                 f"the parameter is {tuple(weight.shape)}")
            element = torch.as_tensor(mask.to_dense(), device=weight.device)
            weight.mul_(element.to(weight.dtype))
            dense[name] = element
    return dense


def save_pruned(out_dir: Any, model: Any, tokenizer: Any, structure: Any,
                masks: Mapping[str, BlockMask], *, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write a pruned checkpoint: save_pretrained model + tokenizer, and masks.safetensors.

    Returns {"checkpoint": folder, "masks": mask file, "sha256": sha256 of the saved weights}.
    The mask file's `source_checkpoint`/`source_sha256` name the saved pruned checkpoint; the
    model it was pruned from goes in `parent_checkpoint`/`parent_sha256` (from `metadata`).
    """
    from codesign.checkpoints import checkpoint_sha256, quiet_transformers
    from codesign.masks import save_masks

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    digest = checkpoint_sha256(out)
    roles = {name: (layer, role) for name, layer, role in structure.prunable(
        list(masks.keys()), include_heads=True)}
    meta = dict(metadata)
    meta.update({"source_checkpoint": str(out), "source_sha256": digest, "roles": roles})
    path = save_masks(out / "masks.safetensors", masks, meta)
    return {"checkpoint": out, "masks": path, "sha256": digest}


# the end-to-end pipeline needs the names above; it imports torch only when it runs
from codesign.pruning.checkpoint import PrunedCheckpoint, prune_checkpoint  # noqa: E402

__all__ = ["PerMatrix", "PrunedCheckpoint", "apply_masks", "oneshot_prune", "per_matrix_value",
           "prune_checkpoint", "read_per_matrix_file", "save_pruned"]
