"""Structured blocks that carry through: heads and FFN neurons that the masks remove entirely.

Detected from the masks alone (never from a flag), under the strategies that read masks
(tile-skip, compact; a dense accelerator ignores masks, as everywhere), per encoder layer of a `bert_encoder`
workload (its `config` gives the heads and the head size d = hidden / heads). A row of a weight
(an output feature) is *dead* when every block covering it is pruned; its output is then the
bias alone, the same constant for every token. What that removes, exactly:

* **V head dead** (all d rows of head h of V): the head's context is sum_j P[i, j] b_v = b_v
  for every query (rows of P sum to 1), whatever Q and K: the head's AV, and its QK^T and
  softmax (whose only consumer is AV), are dropped; its d input columns of attn_out see a
  constant, so they are dropped too (W_o[:, h] b_v,h is folded into attn_out's bias: exact);
  its Q and K rows produce outputs nobody reads, so Q's and K's N shrink by d.
* **K head dead** (V alive): the scores q_i . b_k are constant along the keys, so softmax is
  uniform (shift invariance, whatever Q and K's bias) and QK^T and softmax are dropped, and the
  head's Q and K rows with them. AV is still modelled in full with the uniform P (a mean of V
  over the keys, one row for all queries, would do: not modelled, so this is conservative).
* **Q head dead** alone: the scores rows are all b_q . K^T (one row for every query): not
  modelled, the head's work stays (conservative). A head with Q, K and V all dead is a V-dead
  head: V alone suffices.
* **FFN neuron dead** (row i of intermediate.dense): its GELU(b_i) is a constant, so
  GELU(b_i) W_out[:, i] is folded into output.dense's bias (exact) and column i of output.dense
  goes: intermediate.dense's N, the GELU's elements and output.dense's K shrink to the live
  neurons. (hwmodels ignores biases, so the folds cost nothing here.)

A shrunk weight keeps its mask's blocks: the kept/pruned elements of the surviving rows and
columns, re-blocked at the same block shape (a block kept if any of its weights is). That is
block for block the original mask when the removed rows/columns are whole block rows/columns
(e.g. 16x16 blocks and 32-row heads); otherwise the compacted matrix is re-blocked (an
assumption: the hardware stores the compacted weight). Ignored: the attention mask's padding
(the workload has none); layers without masks on V, K or intermediate.dense are untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from .sparsity import BlockMask
from .sweepcache import CARRIED, is_enabled
from .workload import GemmOp, VectorOp, Workload, _dims


@dataclass(frozen=True)
class LayerStructure:
    """What the masks remove from one encoder layer (see the module docstring)."""

    layer: int
    heads: int
    heads_scored: int  # heads whose QK^T and softmax run (neither K nor V dead)
    heads_output: int  # heads whose AV runs (V not dead)
    neurons: int
    neurons_kept: int

    def as_dict(self) -> dict[str, int]:
        return {"layer": self.layer, "heads": self.heads, "heads_scored": self.heads_scored,
                "heads_output": self.heads_output, "neurons": self.neurons,
                "neurons_kept": self.neurons_kept}


@dataclass(frozen=True)
class Carried:
    """The workload and masks with the removed work dropped; `layers` lists the layers that
    lost something (empty: `workload` and `masks` are the inputs, unchanged)."""

    workload: Workload
    masks: dict[str, BlockMask]
    layers: tuple[LayerStructure, ...]


def live_rows(mask: BlockMask | None, rows: int) -> np.ndarray:
    """bool [rows]: output features (parameter rows) with at least one kept block."""
    if mask is None:
        return np.ones(rows, bool)
    return np.repeat(mask.grid.any(axis=1), mask.block_shape[0])[:rows]


def crop_mask(mask: BlockMask, rows: np.ndarray | None = None,
              cols: np.ndarray | None = None) -> BlockMask:
    """The mask of the weight with only `rows` (out) and `cols` (in) kept, re-blocked at the same
    block shape (a block kept if any of its weights is kept)."""
    element = mask.to_dense()
    if rows is not None:
        element = element[rows]
    if cols is not None:
        element = element[:, cols]
    bh, bw = mask.block_shape
    out, inp = element.shape
    gr, gc = -(-out // bh), -(-inp // bw)
    padded = np.zeros((gr * bh, gc * bw), bool)
    padded[:out, :inp] = element
    grid = padded.reshape(gr, bh, gc, bw).any(axis=(1, 3))
    return BlockMask(grid, mask.block_shape, (out, inp))


def carry_structure(workload: Workload, masks: Mapping[str, BlockMask],
                    sparse_strategy: str = "compact") -> Carried:
    """`workload` without the work that whole dead heads and neurons make unnecessary (module
    docstring); `masks` keyed by weight name as `hwmodels.simulate.attach_masks` returns them.
    Under ``sparse_strategy="dense"`` nothing changes: a dense accelerator ignores the masks.
    The result is the same for every strategy that reads masks: it comes from the bounded cache
    `hwmodels.sweepcache.CARRIED` (keyed by the ops, the config and the masks' content), with a
    dict of masks of its own."""
    if not masks or not workload.config or sparse_strategy == "dense":
        return Carried(workload, dict(masks), ())
    try:
        dims = _dims(workload.config)
    except ValueError:
        return Carried(workload, dict(masks), ())
    if not is_enabled():
        return _carried(workload, masks, dims)
    key = ("carry", workload.name, workload.seq_len, workload.batch, workload.ops, dims,
           tuple(sorted((name, m.content_key) for name, m in masks.items())))
    hit = CARRIED.get(key, lambda: _carried(workload, masks, dims))
    return replace(hit, masks=dict(hit.masks))


def _carried(workload: Workload, masks: Mapping[str, BlockMask], dims: tuple) -> Carried:
    """`carry_structure` under a strategy that reads the masks (not cached); `dims` as
    `_dims(workload.config)` gives them."""
    _, hidden, heads, inter = dims
    by_layer: dict[int, dict[str, GemmOp]] = {}
    for op in workload.gemms:
        if op.layer is not None and op.role:
            by_layer.setdefault(op.layer, {})[op.role] = op
    plans = {}
    for layer, ops in by_layer.items():
        plan = _layer_plan(layer, ops, masks, hidden, heads, inter)
        if plan is not None:
            plans[layer] = plan
    if not plans:
        return Carried(workload, dict(masks), ())
    new_masks = dict(masks)
    ops_out: list[GemmOp | VectorOp] = []
    for op in workload.ops:
        plan = plans.get(op.layer) if op.layer is not None else None
        new = op if plan is None else _shrink(op, plan, new_masks, workload)
        if new is not None:
            ops_out.append(new)
    return Carried(replace(workload, ops=tuple(ops_out)), new_masks,
                   tuple(plans[k].summary for k in sorted(plans)))


@dataclass(frozen=True)
class _Plan:
    summary: LayerStructure
    scored_rows: np.ndarray  # bool [hidden]: Q/K rows still needed
    output_rows: np.ndarray  # bool [hidden]: V rows (= attn_out input columns) still needed
    neurons: np.ndarray  # bool [inter]: live neurons


def _layer_plan(layer: int, ops: Mapping[str, GemmOp], masks: Mapping[str, BlockMask],
                hidden: int, heads: int, inter: int) -> _Plan | None:
    """The rows each role keeps in one layer, or None when the masks remove no whole head or
    neuron there."""
    def mask_of(role: str) -> BlockMask | None:
        op = ops.get(role)
        return masks.get(op.weight_name) if op is not None and op.weight_name else None

    d = hidden // heads
    v_dead = ~live_rows(mask_of("v"), hidden).reshape(heads, d).any(axis=1)
    k_dead = ~live_rows(mask_of("k"), hidden).reshape(heads, d).any(axis=1)
    neurons = live_rows(mask_of("ffn_in"), inter) if "ffn_in" in ops else np.ones(inter, bool)
    scored = ~(v_dead | k_dead)
    if scored.all() and neurons.all():
        return None
    summary = LayerStructure(layer=layer, heads=heads, heads_scored=int(scored.sum()),
                             heads_output=int((~v_dead).sum()), neurons=inter,
                             neurons_kept=int(neurons.sum()))
    return _Plan(summary, np.repeat(scored, d), np.repeat(~v_dead, d), neurons)


def _shrink(op: GemmOp | VectorOp, plan: _Plan, masks: dict[str, BlockMask],
            workload: Workload) -> GemmOp | VectorOp | None:
    """`op` of a planned layer with its dropped work removed (None: nothing left of it)."""
    s = plan.summary
    batch = workload.batch
    if isinstance(op, VectorOp):
        if op.kind == "softmax":
            per_head = op.elements // (batch * s.heads)
            n = batch * s.heads_scored * per_head
        elif op.kind == "gelu":
            n = op.elements // s.neurons * s.neurons_kept
        else:
            return op
        return replace(op, elements=n) if n else None
    role = op.role
    if role in ("qk", "av"):
        heads = s.heads_scored if role == "qk" else s.heads_output
        return replace(op, count=batch * heads) if heads else None
    rows = {"q": plan.scored_rows, "k": plan.scored_rows, "v": plan.output_rows,
            "ffn_in": plan.neurons}.get(role)
    cols = {"attn_out": plan.output_rows, "ffn_out": plan.neurons}.get(role)
    if rows is None and cols is None:
        return op
    keep = rows if rows is not None else cols
    if keep.all():
        return op
    if not keep.any():
        return None
    mask = masks.get(op.weight_name) if op.weight_name else None
    if mask is not None:
        masks[op.weight_name] = crop_mask(mask, rows=rows, cols=cols)
    return replace(op, n=int(keep.sum())) if rows is not None else replace(op, k=int(keep.sum()))


__all__ = ["Carried", "LayerStructure", "carry_structure", "crop_mask", "live_rows"]
