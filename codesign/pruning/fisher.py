"""Fisher block saliency, and the global ranking it allows: which blocks of the whole model to
remove for one overall compression.

What is modelled (Kwon et al., "A Fast Post-Training Pruning Framework for Transformers",
NeurIPS 2022, who rank heads and FFN neurons this way; here the unit is a weight block):
each block b carries a mask variable m_b (1: kept) multiplying its weights, and removing it
(m_b: 1 -> 0) costs, to second order in the task loss L, about 0.5 * F_bb, with F the Fisher
information of the mask variables. `fisher_scores` estimates F_bb on calibration sentences,
one at a time (no padding), without labels: the expectation over the model's own predictive
distribution (classification: sum over classes c of p_c * (dlog p_c / dm_b)^2; regression, a
unit-variance Gaussian around the prediction: (df / dm_b)^2), where
dL/dm_b = sum over the block of w * dL/dw. The scores are in units of the task loss, so blocks
of different matrices and layers compare: `global_keep` removes the blocks with the least
score per weight across every matrix until a fraction of the prunable weights is gone, which
gives each matrix its own density.

What is ignored: the first-order term (the gradient of the loss of a converged model is taken
as zero), interactions between blocks (the Fisher's off-diagonal terms: removing many blocks of
one matrix costs more than the sum), dropout (the model is scored in eval mode). Only the
ranking is changed; re-fitting the kept weights is `codesign.pruning.calibrate.calibrate_masks`.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwmodels.sparsity import BlockMask

from codesign.pruning import SCOPES
from codesign.pruning.batching import torch_threads


@dataclass(frozen=True)
class FisherSaliency:
    """0.5 * the Fisher diagonal of every prunable matrix's block mask variables (float64 grids,
    the mask grid's shape, keyed by parameter name; units of the task loss), on `examples`
    calibration sentences, computed in `seconds`."""

    scores: dict[str, np.ndarray]
    examples: int
    seconds: float


def _block_sums(values: torch.Tensor, block_shape: tuple[int, int]) -> torch.Tensor:
    """Sums over the blocks of a [out, in] tensor (zero padding where a shape does not divide)."""
    rows, cols = values.shape
    bh, bw = block_shape
    grid = (-(-rows // bh), -(-cols // bw))
    padded = values.new_zeros(grid[0] * bh, grid[1] * bw)
    padded[:rows, :cols] = values
    return padded.reshape(grid[0], bh, grid[1], bw).sum(dim=(1, 3))


def fisher_scores(model: Any, structure: Any, *, block_shape: tuple[int, int],
                  calibration: Sequence[Mapping[str, torch.Tensor]],
                  examples: int | None = None, threads: int | None = None) -> FisherSaliency:
    """The label-free block Fisher saliency (module docstring) of every prunable matrix of
    `model` (unchanged; its gradients are cleared), on the first `examples` sentences (None:
    every sentence) of the tokenised `calibration` batches (`calibrate.tokenise_calibration`),
    each trimmed to its own length, on the model's device (scores in float64 there, returned as
    numpy)."""
    t0 = time.perf_counter()
    block_shape = (int(block_shape[0]), int(block_shape[1]))
    names = [n for n, _, _ in structure.prunable(model)]
    params = dict(model.named_parameters())
    weights = {n: params[n].detach().double() for n in names}
    scores = {n: torch.zeros_like(_block_sums(weights[n], block_shape)) for n in names}
    device = next(model.parameters()).device
    count = 0
    model.eval()
    with torch_threads(threads):
        limit = None if examples is None else int(examples)
        for one in itertools.islice(_sentences(calibration, device), limit):
            for weight, grads in _weighted_gradients(model, one, [params[n] for n in names]):
                for n, grad in zip(names, grads):
                    scores[n] += weight * _block_sums(weights[n] * grad.double(),
                                                      block_shape).pow(2)
            count += 1
    model.zero_grad(set_to_none=True)
    if not count:
        raise ValueError("calibration: no sentences (need a few hundred from the training split)")
    return FisherSaliency(scores={n: (0.5 * s / count).cpu().numpy()
                                  for n, s in scores.items()},
                          examples=count, seconds=time.perf_counter() - t0)


def _sentences(calibration: Sequence[Mapping[str, torch.Tensor]],
                device: Any) -> Iterator[dict[str, torch.Tensor]]:
    """Each sentence of the tokenised batches, in order, as a batch of one trimmed to its own
    length (no padding), on `device`."""
    for batch in calibration:
        for row in range(int(batch["input_ids"].shape[0])):
            length = int(batch["attention_mask"][row].sum())
            yield {k: torch.as_tensor(v)[row:row + 1, :length].to(device)
                   for k, v in batch.items()}


def _weighted_gradients(model: Any, inputs: Mapping[str, torch.Tensor],
                        params: list[torch.Tensor]) -> list[tuple[float, tuple[torch.Tensor, ...]]]:
    """[(probability, gradients of the log-likelihood w.r.t. `params`)] of one example: one per
    class, weighted by the model's probability of it; regression: (1, gradient of the output)."""
    logits = model(**inputs).logits[0]
    if logits.numel() == 1:
        return [(1.0, torch.autograd.grad(logits.sum(), params))]
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.detach().exp().tolist()
    last = len(probs) - 1
    return [(p, torch.autograd.grad(log_probs[c], params, retain_graph=c < last))
            for c, p in enumerate(probs)]


def global_keep(scores: Mapping[str, np.ndarray], *, ratio: float,
                weights: Mapping[str, np.ndarray],
                min_density: float = 0.0) -> dict[str, np.ndarray]:
    """Kept-block grids (bool, True = kept) that remove the blocks with the least score per
    weight across all matrices, in that order (ties: matrix order, then grid position,
    row-major), until at least `ratio` of the weights are removed (`weights`: each block's
    weight count, which differs from the block size only in the padded last row or column).

    `min_density` > 0 is a floor: every matrix keeps at least ceil(min_density x its blocks)
    of its blocks (those of the most score per weight), which the global order then skips.
    The diagonal Fisher ignores that removing many blocks of one matrix costs more than the
    sum of their scores, and without a floor high ratios empty whole matrices
    (docs/accuracy.md, "Calibrated fidelity"). A ratio the floor makes unreachable is an error.
    """
    ratio, min_density = float(ratio), float(min_density)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"prune ratio {ratio}: must lie in [0, 1]")
    if not 0.0 <= min_density <= 1.0:
        raise ValueError(f"min_density {min_density}: must lie in [0, 1]")
    names = list(scores)
    flat_w = np.concatenate([np.asarray(weights[n], np.float64).ravel() for n in names])
    flat_s = np.concatenate([np.asarray(scores[n], np.float64).ravel() for n in names])
    sizes = [np.asarray(scores[n]).size for n in names]
    order = np.argsort(flat_s / flat_w, kind="stable")
    if min_density > 0:
        order = order[~_floor_blocks(flat_s / flat_w, sizes, min_density)[order]]
    removed = np.cumsum(flat_w[order])
    target = ratio * flat_w.sum() - 1e-9
    if ratio > 0 and (removed.size == 0 or removed[-1] < target):
        raise ValueError(f"prune ratio {ratio}: unreachable with min_density {min_density} "
                         "(every matrix keeps that fraction of its blocks); lower one of them")
    count = int(np.searchsorted(removed, target)) + 1 if ratio > 0 else 0
    keep = np.ones(flat_w.size, bool)
    keep[order[:min(count, order.size)]] = False
    out, start = {}, 0
    for n, size in zip(names, sizes):
        out[n] = keep[start:start + size].reshape(np.asarray(scores[n]).shape)
        start += size
    return out


def _floor_blocks(per_weight: np.ndarray, sizes: Sequence[int], min_density: float) -> np.ndarray:
    """A flat bool: the ceil(min_density x size) blocks of the most score per weight of each
    matrix (consecutive runs of `sizes` in `per_weight`; ties: the earlier grid position)."""
    protected = np.zeros(per_weight.size, bool)
    start = 0
    for size in sizes:
        top = np.argsort(-per_weight[start:start + size], kind="stable")
        protected[start + top[:int(np.ceil(min_density * size - 1e-9))]] = True
        start += size
    return protected


def global_masks(scores: Mapping[str, np.ndarray], *, ratio: float, block_shape: tuple[int, int],
                 matrix_shapes: Mapping[str, tuple[int, int]],
                 min_density: float = 0.0) -> dict[str, BlockMask]:
    """`global_keep` of `scores` at `ratio` (and `min_density`), each block weighed by its
    weight count (`block_weights`), as the masks of matrices of `matrix_shapes` in blocks of
    `block_shape`."""
    keep = global_keep(scores, ratio=ratio, weights={
        n: block_weights(matrix_shapes[n], block_shape) for n in scores},
        min_density=min_density)
    return {n: BlockMask(k, tuple(block_shape), tuple(matrix_shapes[n])) for n, k in keep.items()}


def fisher_prune(model: Any, structure: Any, *, block_shape: tuple[int, int], ratio: float,
                 calibration: Sequence[Mapping[str, torch.Tensor]], scope: str = "global",
                 damping: float = 0.01, balance: Any = None, min_density: float = 0.0,
                 fisher_examples: int | None = None, threads: int | None = None) -> dict:
    """Calibrated pruning ranked by `fisher_scores`, in place; returns the masks. `scope`
    "global": `global_keep` at `ratio` of the prunable weights (each matrix its own density,
    at least `min_density`);
    "matrix": every matrix loses round(ratio * blocks) of its own least salient blocks. With
    `balance` (a `codesign.pruning.balance.PEBalance`), each matrix's kept count is then
    PE-balanced by the same scores. The scores use the first `fisher_examples` calibration
    sentences (None: all); the kept weights are re-fitted by
    `calibrate.calibrate_masks` on the same calibration sentences."""
    from codesign.pruning.balance import balanced_keep
    from codesign.pruning.calibrate import calibrate_masks

    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: choose one of {', '.join(SCOPES)}")
    block_shape = (int(block_shape[0]), int(block_shape[1]))
    fisher = fisher_scores(model, structure, block_shape=block_shape, calibration=calibration,
                           examples=fisher_examples, threads=threads)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in fisher.scores}
    if scope == "global":
        masks = global_masks(fisher.scores, ratio=ratio, block_shape=block_shape,
                             matrix_shapes=shapes, min_density=min_density)
    else:
        masks = {n: BlockMask(_matrix_keep(s, ratio), block_shape, shapes[n])
                 for n, s in fisher.scores.items()}
    if balance is not None:
        masks = {n: BlockMask(balanced_keep(fisher.scores[n], m.kept_blocks,
                                            balance.groups(shapes[n], block_shape)),
                              block_shape, shapes[n])
                 for n, m in masks.items()}
    calibrate_masks(model, structure, masks=masks, calibration=calibration, damping=damping,
                    threads=threads)
    return masks


def _matrix_keep(scores: np.ndarray, ratio: float) -> np.ndarray:
    """`blocks.prune_mask` on a numpy grid (the per-matrix rule, exact count)."""
    from codesign.pruning.blocks import prune_mask

    return prune_mask(torch.from_numpy(np.asarray(scores, np.float64)), ratio).numpy()


def block_weights(matrix_shape: tuple[int, int], block_shape: tuple[int, int]) -> np.ndarray:
    """Each block's weight count (the block size, less the padding of a last row or column)."""
    ones = torch.ones(int(matrix_shape[0]), int(matrix_shape[1]), dtype=torch.float64)
    return _block_sums(ones, (int(block_shape[0]), int(block_shape[1]))).numpy()


__all__ = ["FisherSaliency", "block_weights", "fisher_prune", "fisher_scores",
           "global_keep", "global_masks"]
