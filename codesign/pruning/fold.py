"""Fold the work of dead heads and dead FFN neurons into biases, so the written weights match
what the simulator runs (`hwmodels.structure`).

What is modelled: a row of a weight (an output feature) is *dead* when every block covering it
is pruned (`hwmodels.structure.live_rows`); with the masks applied its weights are zero, so its
output is its bias alone, the same constant for every token. Two folds are exact (up to float
rounding of the sums), detected from the masks alone, never from a flag:

* **FFN neuron dead** (row i of ffn_in, `intermediate.dense` / `ffn.lin1`): the neuron outputs
  act(b_i) for every token, so act(b_i) * W_out[:, i] is added to ffn_out's bias and column i of
  ffn_out (`output.dense` / `ffn.lin2`) is zeroed. act is the model's own activation
  (`hidden_act`; DistilBERT's `activation`).
* **V head dead** (all d rows of head h of V, d = hidden / heads): the head's context is
  sum_j P[i, j] b_v,h = b_v,h for every query (each row of P sums to 1, whatever the padding
  mask), so W_o[:, head h] @ b_v,h is added to attn_out's bias and those d columns of attn_out
  are zeroed.

What is not folded, because no fold is exact: a **K-dead** head (V alive) has uniform attention
over the unmasked keys, so its context is the mean of V over those keys, which depends on the
input; a **Q-dead** head's scores b_q . k_j still vary along the keys. Their attn_out columns
stay. The Q and K rows of a V-dead head, and the V and ffn_in biases of folded heads and
neurons, are left as they are: nothing reads their outputs once the columns are zero.

The input masks are not changed; the summary carries them with every block of attn_out and
ffn_out that the fold zeroed whole marked pruned, so that the mask file written beside the
folded weights is the one `codesign.masks.extract_masks` reads back from them. The simulator
gives the same figures for both when it carries structure (`hwmodels.structure` drops the
folded columns either way); with `structure="ignore"` the returned masks are the sparser, as
the folded weights are.
Layers without a mask on V or ffn_in fold nothing there.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwmodels.sparsity import BlockMask
from hwmodels.structure import live_rows


@dataclass(frozen=True)
class LayerFold:
    """What one encoder layer folded: the V-dead heads (indices) and the dead FFN neurons."""

    layer: int
    heads: tuple[int, ...]
    neurons: int

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "heads": list(self.heads), "neurons": self.neurons}


@dataclass(frozen=True)
class FoldSummary:
    """What `fold_dead_structure` folded: totals, the layers that folded something, and the
    masks with every block the fold zeroed whole marked pruned (the input masks' own objects
    where nothing was zeroed; not part of the summary's equality or `as_dict`)."""

    heads: int
    neurons: int
    layers: tuple[LayerFold, ...]
    masks: dict[str, BlockMask] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"heads": self.heads, "neurons": self.neurons,
                "layers": [layer.as_dict() for layer in self.layers]}


def fold_dead_structure(model: Any, masks: Mapping[str, BlockMask],
                        structure: Any) -> FoldSummary:
    """Fold, in place, the V-dead heads and dead FFN neurons the masks show (module docstring)
    into attn_out's and ffn_out's biases, zeroing the columns they fed; what was folded.

    `masks` are keyed by checkpoint name and must already be applied (pruned weights zero): a
    dead row holding a nonzero weight is a ValueError naming the parameter. `structure` is the
    model's `codesign.checkpoints.ModelStructure` (BERT, RoBERTa or DistilBERT layout). Masks
    with no dead head or neuron change nothing. `masks` itself is not changed: the summary's
    `masks` are the ones that describe the folded weights.
    """
    import torch

    params = dict(model.named_parameters())
    by_layer: dict[int, dict[str, str]] = {}
    for name, layer, role in structure.prunable(params):
        by_layer.setdefault(layer, {})[role] = name
    heads = _config_int(model.config, "num_attention_heads", "n_heads")
    activation = _activation(model.config, structure)
    folds, zeroed = [], {}
    with torch.no_grad():
        for layer in sorted(by_layer):
            names = by_layer[layer]
            dead_heads = _fold_heads(params, masks, names, heads, zeroed)
            neurons = _fold_neurons(params, masks, names, activation, zeroed)
            if dead_heads or neurons:
                folds.append(LayerFold(layer=layer, heads=dead_heads, neurons=neurons))
    new_masks = dict(masks)
    for name, cols in zeroed.items():
        if name in masks:
            new_masks[name] = _without_columns(masks[name], cols)
    return FoldSummary(heads=sum(len(f.heads) for f in folds),
                       neurons=sum(f.neurons for f in folds), layers=tuple(folds),
                       masks=new_masks)


def _without_columns(mask: BlockMask, cols: np.ndarray) -> BlockMask:
    """`mask` with the block columns whose every (real) column is in `cols` pruned."""
    bw = mask.block_shape[1]
    grid_cols = mask.grid.shape[1]
    padded = np.ones(grid_cols * bw, bool)  # the zero padding of an edge block counts as zeroed
    padded[: cols.size] = cols
    gone = padded.reshape(grid_cols, bw).all(axis=1)
    if not gone.any():
        return mask
    return BlockMask(mask.grid & ~gone[None, :], mask.block_shape, mask.matrix_shape)


def _fold_heads(params: Mapping[str, Any], masks: Mapping[str, BlockMask],
                names: Mapping[str, str], heads: int,
                zeroed: dict[str, np.ndarray]) -> tuple[int, ...]:
    """Fold one layer's V-dead heads into attn_out's bias (its zeroed columns go in `zeroed`);
    their indices."""
    v_name, out_name = names.get("v"), names.get("attn_out")
    if v_name is None or out_name is None or v_name not in masks:
        return ()
    hidden = params[v_name].shape[0]
    d = hidden // heads
    dead = ~live_rows(masks[v_name], hidden).reshape(heads, d).any(axis=1)
    if not dead.any():
        return ()
    rows = dead.repeat(d)
    _check_zero(params[v_name], rows, v_name)
    constant = _bias(params, v_name, hidden)[rows].double()
    _fold_columns(params, out_name, rows, constant)
    zeroed[out_name] = rows
    return tuple(int(h) for h in dead.nonzero()[0])


def _fold_neurons(params: Mapping[str, Any], masks: Mapping[str, BlockMask],
                  names: Mapping[str, str], activation: Any,
                  zeroed: dict[str, np.ndarray]) -> int:
    """Fold one layer's dead FFN neurons into ffn_out's bias (its zeroed columns go in
    `zeroed`); how many."""
    in_name, out_name = names.get("ffn_in"), names.get("ffn_out")
    if in_name is None or out_name is None or in_name not in masks:
        return 0
    inter = params[in_name].shape[0]
    dead = ~live_rows(masks[in_name], inter)
    if not dead.any():
        return 0
    _check_zero(params[in_name], dead, in_name)
    bias = _bias(params, in_name, inter)
    constant = activation(bias[None, :])[0][dead].double()  # the model's act on its bias
    _fold_columns(params, out_name, dead, constant)
    zeroed[out_name] = dead
    return int(dead.sum())


def _fold_columns(params: Mapping[str, Any], name: str, cols: Any, constant: Any) -> None:
    """bias(name) += W[:, cols] @ constant (float64, then the bias's dtype); W[:, cols] = 0."""
    import torch

    weight = params[name]
    index = torch.from_numpy(cols).to(weight.device)
    bias = params.get(_bias_name(name))
    if bias is None:
        raise ValueError(f"fold: {name} has no bias to fold the dead rows' constant output "
                         "into: give the layer a bias")
    added = weight.detach()[:, index].double() @ constant.to(weight.device)
    bias.add_(added.to(bias.dtype))
    weight[:, index] = 0


def _check_zero(weight: Any, rows: Any, name: str) -> None:
    """A ValueError when a row the mask prunes still holds a nonzero weight."""
    import torch

    index = torch.from_numpy(rows).to(weight.device)
    if bool((weight.detach()[index] != 0).any()):
        raise ValueError(f"fold: {name} has nonzero weights in rows its mask prunes: apply the "
                         "masks first (codesign.pruning.apply_masks)")


def _bias_name(weight_name: str) -> str:
    return weight_name[: -len("weight")] + "bias"


def _bias(params: Mapping[str, Any], weight_name: str, rows: int) -> Any:
    """The bias of a weight (zeros when it has none), detached."""
    import torch

    bias = params.get(_bias_name(weight_name))
    if bias is None:
        weight = params[weight_name]
        return torch.zeros(rows, dtype=weight.dtype, device=weight.device)
    return bias.detach()


def _config_int(config: Any, *keys: str) -> int:
    for key in keys:
        value = getattr(config, key, None)
        if value is not None:
            return int(value)
    raise ValueError(f"fold: model config has none of {', '.join(keys)}: not a BERT-family "
                     "config")


def _activation(config: Any, structure: Any) -> Any:
    """The FFN activation the model runs (a callable on tensors)."""
    from transformers.activations import get_activation

    key = "activation" if structure.architecture == "distilbert" else "hidden_act"
    act = getattr(config, key, None)
    if act is None:
        raise ValueError(f"fold: model config has no {key!r}: not a {structure.architecture} "
                         "config")
    return get_activation(act) if isinstance(act, str) else act


__all__ = ["FoldSummary", "LayerFold", "fold_dead_structure"]
