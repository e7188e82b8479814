"""Calibrated one-shot block pruning: choose blocks by a saliency, re-fit the kept weights.

What is modelled (OBS family: Hassibi and Stork 1993; OBC, Frantar and Alistarh 2022; SparseGPT
2023; the layer-wise reconstruction of Kwon et al. 2022): the encoder layers are processed in
forward order, and inside a layer the prunable linears in the order their inputs exist
((q, k, v), attn_out, ffn_in, ffn_out). For each linear, on a few hundred unlabelled calibration
sentences (padding tokens excluded):

* X_p: the linear's inputs on the PRUNED model (earlier layers and earlier linears of this layer
  already pruned and re-fitted); Y_d: the DENSE linear's outputs on the DENSE model. Fitting to
  Y_d, not to the layer's own output on X_p, corrects the drift built up before the layer.
* the blocks to remove, exactly round(ratio * nblocks) per matrix with the same grid, rounding,
  zero padding and tie-breaking as `oneshot_prune` (`blocks.prune_mask`; PE-balanced with
  `balance`: `codesign.pruning.balance`), ranked by
  ``saliency="norm"`` (block L2 norm: the very masks of magnitude one-shot) or ``"obs"`` (the
  OBS proxy sum(w^2 / [H^-1]_jj) over the block, H = X_p^T X_p + damping * mean(diag) * I;
  the scores: `codesign.pruning.saliency`);
* the kept weights of every output row, and its bias, re-fitted by damped least squares:
  min ||X_p[:, K] w + b - y_d||^2 + lambda ||w||^2 (the bias is not damped), lambda = damping *
  mean(diag X_p^T X_p). Rows of one block row share their kept input columns K, so there is one
  Cholesky factorisation per distinct K. ``refit_bias=False`` keeps the bias and fits w to
  y_d - b instead. Pruned weights are exactly zero afterwards.

Memory: per matrix the Gram X^T X and the cross term X^T Y (float64, (in+1)^2 + (in+1) * out:
24 MB for MiniLM's 384x1536 ffn_out), the current layer's dense outputs on the calibration tokens
and two hidden-state streams; never the whole model's activations.

What is ignored: labels and gradients (none are used); interactions between matrices beyond the
sequential order (each matrix is fitted on its own); attention softmax and LayerNorm are not
re-fitted. The encoder layers are called with the arguments the model passed to its first layer
(same attention mask for every layer), which holds for the BERT, RoBERTa and DistilBERT layouts.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwmodels.sparsity import BlockMask

from codesign.pruning import PerMatrix, per_matrix_value
from codesign.pruning.batching import torch_threads
from codesign.pruning.balance import PEBalance, keep_blocks
from codesign.pruning.blocks import expand
from codesign.pruning.saliency import SALIENCIES, BlockSaliency, block_scores, damping_lambda

log = logging.getLogger("codesign")
# linears whose inputs exist at the same point of a layer's forward, in forward order
ROLE_GROUPS: tuple[tuple[str, ...], ...] = (("q", "k", "v"), ("attn_out",), ("ffn_in",),
                                            ("ffn_out",))


@dataclass(frozen=True)
class MatrixFit:
    """One matrix's reconstruction on the calibration tokens (sums of squared output errors
    against the dense layer's output, over tokens and output features)."""

    name: str
    layer: int
    role: str
    tokens: int
    error_masked: float  # the dense weights with the pruned blocks zeroed, original bias
    error_fitted: float  # after the least-squares re-fit
    target_energy: float  # sum of y_d^2: the error of an all-zero layer
    kept_sets: int  # distinct kept column sets = Cholesky factorisations


@dataclass(frozen=True)
class CalibratedPruning:
    """What `calibrate_prune` did: the masks (keyed by checkpoint name) and each matrix's fit."""

    masks: dict[str, BlockMask]
    fits: tuple[MatrixFit, ...]
    tokens: int
    seconds: float


class _Stop(Exception):
    """Raised from a hook to end a forward pass early."""


def tokenise_calibration(tokenizer: Any, split: Any, *, max_seq_len: int,
                         batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """Calibration batches from a GlueSplit (texts only; labels are never read).

    Sentences are sorted by length (less padding), truncated to `max_seq_len` and padded per
    batch; each batch is the dict a model's forward takes (input_ids, attention_mask, ...).
    """
    args = (split.text_a,) if split.text_b is None else (split.text_a, split.text_b)
    enc = tokenizer(*args, truncation=True, max_length=int(max_seq_len), padding=False)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    features = [{k: enc[k][i] for k in keys} for i in range(len(split.text_a))]
    if not features:
        raise ValueError("calibration: no sentences (need a few hundred from the training split)")
    features.sort(key=lambda f: len(f["input_ids"]))
    return [dict(tokenizer.pad(features[i:i + batch_size], padding=True, return_tensors="pt"))
            for i in range(0, len(features), batch_size)]


def calibrated_prune(model: Any, structure: Any, *, block_shape: tuple[int, int],
                     ratio: PerMatrix, calibration: Sequence[Mapping[str, torch.Tensor]],
                     saliency: str = "norm", damping: float = 0.01, refit_bias: bool = True,
                     threads: int | None = None, balance: PEBalance | None = None,
                     ) -> dict[str, BlockMask]:
    """Prune `model` in place, calibrated (see the module docstring); returns the masks.

    `calibration`: tokenised batches (`tokenise_calibration`); `ratio` a number or a per-matrix
    mapping as in `oneshot_prune`; `threads`: torch intra-op threads for the run (None:
    `$CODESIGN_THREADS`, else every CPU; the re-fit's small solves always run on one);
    `balance`: PE-balanced blocks (codesign.pruning.balance; None: off), chosen by the same
    saliency.
    """
    return calibrate_prune(model, structure, block_shape=block_shape, ratio=ratio,
                           calibration=calibration, saliency=saliency, damping=damping,
                           refit_bias=refit_bias, threads=threads, balance=balance).masks


def calibrate_prune(model: Any, structure: Any, *, block_shape: tuple[int, int],
                    ratio: PerMatrix, calibration: Sequence[Mapping[str, torch.Tensor]],
                    saliency: str = "norm", damping: float = 0.01, refit_bias: bool = True,
                    threads: int | None = None, balance: PEBalance | None = None,
                    ) -> CalibratedPruning:
    """`calibrated_prune` with each matrix's reconstruction errors (CalibratedPruning)."""
    _check_settings(saliency, damping, calibration)
    with torch_threads(threads):
        return _calibrate(model, structure, calibration, dict(
            block_shape=tuple(int(x) for x in block_shape), ratio=ratio, saliency=saliency,
            damping=float(damping), refit_bias=refit_bias, balance=balance))


def _check_settings(saliency: str, damping: float, calibration: Sequence[Any]) -> None:
    """One-line errors for a bad saliency, damping or an empty calibration set."""
    if saliency not in SALIENCIES:
        raise ValueError(f"saliency {saliency!r}: choose one of {', '.join(SALIENCIES)}")
    if not float(damping) > 0:
        raise ValueError(f"damping {damping}: must be > 0 (a fraction of mean diag(X^T X))")
    if not calibration:
        raise ValueError("calibration: no batches (tokenise a few hundred training sentences)")


def _calibrate(model: Any, structure: Any, calibration: Sequence[Mapping[str, torch.Tensor]],
               settings: dict[str, Any]) -> CalibratedPruning:
    """The layer loop of `calibrate_prune` (settings: `_prune_and_fit`'s keywords)."""
    t0 = time.perf_counter()
    layers = _layer_matrices(model, structure)
    dense = copy.deepcopy(model).eval()
    model.eval()
    masks: dict[str, BlockMask] = {}
    fits: list[MatrixFit] = []
    with torch.no_grad():
        streams = _first_layer_inputs(model, layers[0][1], calibration)
        dense_hidden = [s["hidden"] for s in streams]
        pruned_hidden = list(dense_hidden)
        for layer, path, names in layers:
            targets, dense_hidden = _dense_targets(dense, path, names, streams, dense_hidden)
            module = model.get_submodule(path)
            for roles, stats in _group_moments(model, module, names, streams, pruned_hidden,
                                               targets):
                for role in roles:
                    mask, fit = _prune_and_fit(model, names[role], layer, role, stats[role],
                                               **settings)
                    masks[names[role]] = mask
                    fits.append(fit)
            pruned_hidden = [_call_layer(module, h, s) for h, s in zip(pruned_hidden, streams)]
            log.debug("calibrated layer %d: %s", layer, ", ".join(
                f"{f.role} {f.error_masked:.3g}->{f.error_fitted:.3g}" for f in fits[-len(names):]))
    tokens = int(sum(int(s["tokens"].sum()) for s in streams))
    return CalibratedPruning(masks=masks, fits=tuple(fits), tokens=tokens,
                             seconds=time.perf_counter() - t0)


def _layer_matrices(model: Any, structure: Any) -> list[tuple[int, str, dict[str, str]]]:
    """[(layer, layer module path, {role: weight name})] in layer order, from the structure."""
    suffixes = dict(structure.role_suffixes)
    by_layer: dict[int, tuple[str, dict[str, str]]] = {}
    for name, layer, role in structure.prunable(model):
        path = name[: -len(suffixes[role])].rstrip(".")
        by_layer.setdefault(layer, (path, {}))[1][role] = name
    if not by_layer:
        raise ValueError(f"no prunable matrices found for the {structure.architecture} layout")
    return [(layer, *by_layer[layer]) for layer in sorted(by_layer)]


def _module_of(model: Any, weight_name: str) -> torch.nn.Module:
    return model.get_submodule(weight_name.rsplit(".", 1)[0])


def _first_layer_inputs(model: Any, first_layer_path: str,
                        calibration: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
    """Per batch: the hidden state the model feeds its first encoder layer, the other arguments
    of that call (reused for every layer) and the bool mask of real (non-padding) tokens."""
    device = next(model.parameters()).device
    layer = model.get_submodule(first_layer_path)
    caught: dict[str, Any] = {}

    def catch(_module: Any, args: tuple, kwargs: dict) -> None:
        caught["args"], caught["kwargs"] = args, kwargs
        raise _Stop

    streams = []
    handle = layer.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for batch in calibration:
            inputs = {k: torch.as_tensor(v).to(device) for k, v in batch.items()}
            try:
                model(**inputs)
            except _Stop:
                pass
            args = caught.pop("args")
            tokens = inputs["attention_mask"].bool() if "attention_mask" in inputs else \
                torch.ones(inputs["input_ids"].shape, dtype=torch.bool, device=device)
            streams.append({"hidden": args[0], "args": args[1:], "kwargs": caught.pop("kwargs"),
                            "tokens": tokens})
    finally:
        handle.remove()
    return streams


def _call_layer(layer: torch.nn.Module, hidden: torch.Tensor, stream: Mapping[str, Any],
                ) -> torch.Tensor:
    """The layer's output hidden state (layers return a tensor or a tuple led by it)."""
    out = layer(hidden, *stream["args"], **stream["kwargs"])
    return out[0] if isinstance(out, tuple) else out


def _dense_targets(dense: Any, path: str, names: Mapping[str, str],
                   streams: Sequence[Mapping[str, Any]], hidden: Sequence[torch.Tensor],
                   ) -> tuple[dict[str, list[torch.Tensor]], list[torch.Tensor]]:
    """The dense layer's linear outputs on the dense stream ({role: per batch (tokens, out)},
    padding dropped) and the dense stream's next hidden states."""
    targets: dict[str, list[torch.Tensor]] = {role: [] for role in names}
    current: dict[str, torch.Tensor] = {}

    def keeper(role: str) -> Any:
        def keep(_module: Any, _inputs: tuple, out: torch.Tensor) -> None:
            targets[role].append(out[current["tokens"]].float())
        return keep

    handles = [_module_of(dense, name).register_forward_hook(keeper(role))
               for role, name in names.items()]
    layer = dense.get_submodule(path)
    try:
        nxt = []
        for h, stream in zip(hidden, streams):
            current["tokens"] = stream["tokens"]
            nxt.append(_call_layer(layer, h, stream))
    finally:
        for handle in handles:
            handle.remove()
    return targets, nxt


@dataclass(frozen=True)
class _Moments:
    """Sufficient statistics of one matrix's fit, bias column last: gram = Xa^T Xa,
    cross = Xa^T Y_d, energy = column sums of Y_d^2 (Xa = [X_p, 1]; float64)."""

    gram: torch.Tensor
    cross: torch.Tensor
    energy: torch.Tensor
    tokens: int


def _group_moments(model: Any, layer: torch.nn.Module, names: Mapping[str, str],
                   streams: Sequence[Mapping[str, Any]], hidden: Sequence[torch.Tensor],
                   targets: Mapping[str, Sequence[torch.Tensor]],
                   ) -> Iterator[tuple[list[str], dict[str, _Moments]]]:
    """(roles, their moments) per ROLE_GROUPS group present in the layer, in forward order.
    Lazy: a group's moments are collected only when the caller asks for it, so a caller that
    prunes a group before asking for the next one gives the next one the pruned inputs."""
    for group in ROLE_GROUPS:
        roles = [r for r in group if r in names]
        if roles:
            yield roles, _pruned_statistics(model, layer, names, roles, streams, hidden, targets)


def _pruned_statistics(model: Any, layer: torch.nn.Module, names: Mapping[str, str],
                       roles: Sequence[str], streams: Sequence[Mapping[str, Any]],
                       hidden: Sequence[torch.Tensor],
                       targets: Mapping[str, Sequence[torch.Tensor]]) -> dict[str, _Moments]:
    """Run the pruned layer on the pruned stream up to the group's linears; their moments."""
    sums: dict[str, list[Any]] = {}
    current: dict[str, Any] = {}

    def collector(role: str) -> Any:
        def collect(_module: Any, inputs: tuple, _out: Any) -> None:
            x = inputs[0][current["tokens"]].float()
            xa = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
            y = targets[role][current["batch"]]
            parts = ((xa.T @ xa).double(), (xa.T @ y).double(), y.double().pow(2).sum(0))
            acc = sums.setdefault(role, [0, 0, 0, 0])
            for i, part in enumerate(parts):
                acc[i] = acc[i] + part
            acc[3] += x.shape[0]
            current["seen"].add(role)
            if current["seen"] >= set(roles):
                raise _Stop
        return collect

    handles = [_module_of(model, names[role]).register_forward_hook(collector(role))
               for role in roles]
    try:
        for i, (h, stream) in enumerate(zip(hidden, streams)):
            current.update(tokens=stream["tokens"], batch=i, seen=set())
            try:
                _call_layer(layer, h, stream)
            except _Stop:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return {role: _Moments(*sums[role]) for role in roles}


def _prune_and_fit(model: Any, name: str, layer: int, role: str, moments: _Moments, *,
                   block_shape: tuple[int, int], ratio: PerMatrix, saliency: str, damping: float,
                   refit_bias: bool, given: Mapping[str, BlockMask] | None = None,
                   balance: PEBalance | None = None) -> tuple[BlockMask, MatrixFit]:
    """Choose one matrix's blocks (or take `given[name]`), re-fit its kept weights (in place);
    its mask and fit."""
    module = _module_of(model, name)
    weight = module.weight
    inp = weight.shape[1]
    w = weight.detach().double()
    b = module.bias.detach().double() if module.bias is not None else w.new_zeros(w.shape[0])
    refit_bias = refit_bias and module.bias is not None
    gram_w = moments.gram[:inp, :inp]
    lam = damping_lambda(gram_w, damping)
    if given is not None:
        keep = torch.from_numpy(np.array(given[name].grid, dtype=bool))
    else:
        r = per_matrix_value(ratio, name, layer, role, what="prune ratio")
        scores = block_scores(weight, gram_w, lam, block_shape, saliency)  # norm: oneshot's
        keep = keep_blocks(scores, r, balance=balance, matrix_shape=tuple(weight.shape),
                           block_shape=block_shape)
    element = expand(keep, block_shape, tuple(weight.shape)).to(w.device)
    before = _squared_error(torch.cat([(w * element).T, b[None]]), moments)
    with torch_threads(1):
        new_w, new_b = _refit(w, b, keep, element, block_shape, moments, lam, refit_bias)
    new_w = new_w * element  # exactly zero where pruned
    after = _squared_error(torch.cat([new_w.T, new_b[None]]), moments)
    if given is not None and after > before:
        # given masks only: keep the masked weights when the damped re-fit fits worse (a matrix
        # with nothing removed, whose inputs are still the dense ones)
        new_w, new_b, after = w * element, b, before
    weight.copy_(new_w.to(weight.dtype))
    if module.bias is not None:
        module.bias.copy_(new_b.to(module.bias.dtype))
    mask = BlockMask(grid=keep.numpy(), block_shape=tuple(block_shape),
                     matrix_shape=tuple(weight.shape))
    fit = MatrixFit(name=name, layer=layer, role=role, tokens=moments.tokens,
                    error_masked=before, error_fitted=after,
                    target_energy=float(moments.energy.sum()),
                    kept_sets=len({bytes(row.numpy().tobytes()) for row in keep}))
    return mask, fit


def _squared_error(v: torch.Tensor, moments: _Moments) -> float:
    """sum over tokens and outputs of (Xa v - y_d)^2 from the moments (v: (in+1, out))."""
    quad = (v * (moments.gram @ v)).sum()
    return float(quad - 2.0 * (v * moments.cross).sum() + moments.energy.sum())


def _refit(w: torch.Tensor, b: torch.Tensor, keep: torch.Tensor, element: torch.Tensor,
           block_shape: tuple[int, int], moments: _Moments, lam: float,
           refit_bias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped least squares of each output row on its kept columns, one Cholesky per distinct
    kept set (block rows with the same kept blocks share it)."""
    out, inp = w.shape
    bh = int(block_shape[0])
    new_w, new_b = torch.zeros_like(w), b.clone()
    groups: dict[bytes, list[int]] = {}
    for r, row in enumerate(keep):
        groups.setdefault(row.numpy().tobytes(), []).append(r)
    gram, cross = moments.gram, moments.cross
    for block_rows in groups.values():
        rows = torch.cat([torch.arange(r * bh, min((r + 1) * bh, out), device=w.device)
                          for r in block_rows])
        kept = element[block_rows[0] * bh].nonzero().flatten()
        idx = torch.cat([kept, kept.new_tensor([inp])]) if refit_bias else kept
        if idx.numel() == 0:
            continue  # nothing kept, bias kept as it is
        system = gram[idx][:, idx]
        system.diagonal()[: kept.numel()] += lam  # the bias is not damped
        rhs = cross[idx][:, rows]
        if not refit_bias:  # fit w to y_d - b
            rhs = rhs - gram[kept, inp][:, None] * b[rows][None, :]
        sol = _solve_spd(system, rhs)
        new_w[rows[:, None], kept[None, :]] = sol[: kept.numel()].T
        if refit_bias:
            new_b[rows] = sol[kept.numel()]
    return new_w, new_b


# The re-fit runs on one torch thread: it is hundreds of small factorisations and gathers, and
# measured on the 2-core machine under load (load average ~8), two OpenMP threads made each
# 10-100x slower than one (thread hand-offs on oversubscribed cores).


def _solve_spd(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """system^-1 rhs by Cholesky (least squares where the system is not positive definite)."""
    factor, info = torch.linalg.cholesky_ex(system)
    if int(info) == 0:
        # two triangular solves: measured faster than torch.cholesky_solve here
        half = torch.linalg.solve_triangular(factor, rhs, upper=False)
        return torch.linalg.solve_triangular(factor.mT, half, upper=True)
    return torch.linalg.lstsq(system, rhs).solution


# --------------------------------------------------------------------------- given masks
def block_saliency(model: Any, structure: Any, *, block_shape: tuple[int, int],
                   calibration: Sequence[Mapping[str, torch.Tensor]], saliency: str = "obs",
                   damping: float = 0.01, threads: int | None = None) -> BlockSaliency:
    """The saliency `calibrate_prune` ranks blocks by, for every matrix at once, without
    pruning: each linear's inputs are those of the dense model (calibrate_prune sees the pruned
    model's inputs from the second group of linears on, so only layer 0's q, k, v agree
    exactly). The model is not changed."""
    _check_settings(saliency, damping, calibration)
    block_shape = tuple(int(x) for x in block_shape)
    scores: dict[str, np.ndarray] = {}
    energy: dict[str, float] = {}
    with torch_threads(threads), torch.no_grad():
        model.eval()
        layers = _layer_matrices(model, structure)
        streams = _first_layer_inputs(model, layers[0][1], calibration)
        hidden = [s["hidden"] for s in streams]
        for _layer, path, names in layers:
            targets, nxt = _dense_targets(model, path, names, streams, hidden)
            module = model.get_submodule(path)
            for roles, stats in _group_moments(model, module, names, streams, hidden, targets):
                for role in roles:
                    scores[names[role]] = _saliency_grid(model, names[role], stats[role],
                                                         block_shape, saliency, float(damping))
                    energy[names[role]] = float(stats[role].energy.sum())
            hidden = nxt
    tokens = int(sum(int(s["tokens"].sum()) for s in streams))
    return BlockSaliency(scores=scores, energy=energy, tokens=tokens, saliency=saliency)


def _saliency_grid(model: Any, name: str, moments: _Moments, block_shape: tuple[int, int],
                   saliency: str, damping: float) -> np.ndarray:
    """One matrix's block scores as `_prune_and_fit` computes them (float64 numpy grid)."""
    weight = _module_of(model, name).weight
    gram_w = moments.gram[: weight.shape[1], : weight.shape[1]]
    return block_scores(weight, gram_w, damping_lambda(gram_w, damping), block_shape,
                        saliency).double().cpu().numpy()


def calibrate_masks(model: Any, structure: Any, *, masks: Mapping[str, BlockMask],
                    calibration: Sequence[Mapping[str, torch.Tensor]], damping: float = 0.01,
                    refit_bias: bool = True, threads: int | None = None) -> CalibratedPruning:
    """`calibrate_prune` with the masks given instead of chosen: the same forward-order re-fit
    of every matrix's kept weights (and bias) to the dense layer outputs, in place, except that
    a matrix whose re-fit fits the calibration tokens worse than its masked weights keeps
    them (the damping makes the re-fit of a matrix with nothing removed and dense inputs
    slightly worse than the dense weights). `masks` must hold every prunable matrix, all of
    one block shape."""
    names = [n for n, _, _ in structure.prunable(model)]
    missing = [n for n in names if n not in masks]
    if missing:
        raise ValueError(f"masks: none for {len(missing)} prunable matrix(es), e.g. {missing[0]}")
    shapes = {tuple(masks[n].block_shape) for n in names}
    if len(shapes) != 1:
        raise ValueError(f"masks: one block shape expected, got {sorted(shapes)}")
    _check_settings("norm", damping, calibration)
    with torch_threads(threads):
        return _calibrate(model, structure, calibration, dict(
            block_shape=shapes.pop(), ratio=0.0, saliency="norm", damping=float(damping),
            refit_bias=refit_bias, given=dict(masks)))
