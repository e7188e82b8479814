"""Block saliency: the score by which calibrated pruning ranks the blocks of one matrix.

What is modelled (OBS family: Hassibi and Stork 1993; OBC, Frantar and Alistarh 2022):
``saliency="norm"`` is the block L2 norm (`blocks.block_norms`: the very masks of magnitude
one-shot pruning); ``"obs"`` is the OBS proxy sum(w^2 / [H^-1]_jj) over the block, the loss of
removing each weight alone, H = X^T X + lambda I with X the matrix's calibration inputs and
lambda = damping * mean(diag X^T X). `BlockSaliency` holds every matrix's grid of scores.

What is ignored: interactions between the weights of a block and between blocks (each weight's
OBS loss is taken alone and summed); the bias. The calibration pass that gathers X^T X lives in
`codesign.pruning.calibrate` (`calibrate_prune`, `block_saliency`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from codesign.pruning.blocks import block_norms, block_sq_norms

SALIENCIES: tuple[str, ...] = ("norm", "obs")


def damping_lambda(gram_w: torch.Tensor, damping: float) -> float:
    """lambda = damping * mean(diag X^T X) (at least damping * 1e-12): the ridge of H and of
    the re-fit."""
    return float(damping) * max(float(gram_w.diagonal().mean()), 1e-12)


def obs_scores(w: torch.Tensor, gram_w: torch.Tensor, lam: float,
               block_shape: tuple[int, int]) -> torch.Tensor:
    """Block sums of w_ij^2 / [H^-1]_jj, H = X^T X + lam I (the OBS loss of each weight alone)."""
    hessian = gram_w + lam * torch.eye(gram_w.shape[0], dtype=gram_w.dtype, device=gram_w.device)
    inverse_diag = torch.cholesky_inverse(torch.linalg.cholesky(hessian)).diagonal()
    return block_sq_norms(w * inverse_diag.rsqrt()[None, :], block_shape)


def block_scores(weight: torch.Tensor, gram_w: torch.Tensor, lam: float,
                 block_shape: tuple[int, int], saliency: str) -> torch.Tensor:
    """One matrix's block grid of scores: "norm" (`block_norms` of `weight`, float32 for a
    float32 weight) or "obs" (`obs_scores` of the weight in float64 with this lambda)."""
    if saliency == "obs":
        return obs_scores(weight.detach().double(), gram_w, lam, block_shape)
    return block_norms(weight, block_shape)


@dataclass(frozen=True)
class BlockSaliency:
    """Per-block saliency of every prunable matrix on the DENSE model (nothing pruned): grids
    keyed by checkpoint name (float64, the mask grid's shape), and each matrix's output energy
    (sum of y_d^2 over the calibration tokens: the error of an all-zero matrix)."""

    scores: dict[str, np.ndarray]
    energy: dict[str, float]
    tokens: int
    saliency: str

    def relative(self) -> dict[str, np.ndarray]:
        """Scores over the matrix's output energy: the fraction of the layer output's energy
        each block's removal is estimated to cost, comparable across matrices (an estimate:
        layer outputs of different layers matter differently to the task loss)."""
        return {n: s / max(self.energy[n], 1e-30) for n, s in self.scores.items()}


__all__ = ["BlockSaliency", "SALIENCIES", "block_scores", "damping_lambda", "obs_scores"]
