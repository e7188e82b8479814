"""Block partitioning of a weight matrix: block L2 norms, percentile pruning, grid expansion.

What is modelled: a matrix of shape (out, in) in the parameter's own orientation is cut into
blocks of `block_shape = (bh, bw)` rows x columns. When bh or bw does not divide the matrix, the
matrix is zero-padded at the bottom/right (as in the seed paper), so the grid is
(ceil(out/bh), ceil(in/bw)) and the last block row/column is partial. A partial block's norm is
the norm of its real weights (the padding adds zeros).

Faithful to the paper, a partial block is ranked by its plain L2 norm, so it tends to rank lower
than a full block of the same per-weight magnitude and is pruned first; the block density is
then exactly 1 - ratio but the weight density can differ from it by up to the edge row's or
column's share of the matrix (256x1 on MiniLM's 384-row matrices at ratio 0.5: 0.66).
`prune_mask` breaks ties by grid position (row-major).
"""
from __future__ import annotations

import math

import torch


def grid_shape(matrix_shape: tuple[int, int], block_shape: tuple[int, int]) -> tuple[int, int]:
    """(ceil(out/bh), ceil(in/bw))."""
    out, inp = (int(x) for x in matrix_shape)
    bh, bw = (int(x) for x in block_shape)
    if bh <= 0 or bw <= 0:
        raise ValueError(f"block shape {bh}x{bw}: both sides must be positive")
    return math.ceil(out / bh), math.ceil(inp / bw)


def _padded_blocks(weight: torch.Tensor, block_shape: tuple[int, int]) -> torch.Tensor:
    """View of the zero-padded matrix as (grid_rows, bh, grid_cols, bw)."""
    if weight.ndim != 2:
        raise ValueError(f"block norms need a 2-D weight, got shape {tuple(weight.shape)}")
    bh, bw = (int(x) for x in block_shape)
    rows, cols = grid_shape(tuple(weight.shape), (bh, bw))
    pad_r, pad_c = rows * bh - weight.shape[0], cols * bw - weight.shape[1]
    if pad_r or pad_c:
        weight = torch.nn.functional.pad(weight, (0, pad_c, 0, pad_r))
    return weight.reshape(rows, bh, cols, bw)


def block_sq_norms(weight: torch.Tensor, block_shape: tuple[int, int]) -> torch.Tensor:
    """Sum of squares per block (differentiable; grid shape)."""
    blocks = _padded_blocks(weight, block_shape)
    return blocks.pow(2).sum(dim=(1, 3))


def block_norms(weight: torch.Tensor, block_shape: tuple[int, int]) -> torch.Tensor:
    """L2 norm per block, grid (ceil(out/bh), ceil(in/bw)), zero padding for partial blocks.

    Computed in float32 (or float64 for float64 input) whatever the weight's dtype.
    """
    w = weight.detach()
    if w.dtype not in (torch.float32, torch.float64):
        w = w.float()
    return block_sq_norms(w, block_shape).sqrt()


def prune_mask(norms: torch.Tensor, ratio: float) -> torch.Tensor:
    """Bool grid, True = kept: exactly round(ratio * nblocks) blocks with the smallest norms pruned.

    This is the per-matrix percentile rule of the seed paper, made exact: ties are broken by
    grid position (row-major), so the count never depends on ties.
    """
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
        raise ValueError(f"prune ratio {ratio}: must lie in [0, 1]")
    flat = norms.detach().reshape(-1).double().cpu()
    n_prune = int(round(ratio * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_prune:
        order = torch.argsort(flat, stable=True)
        keep[order[:n_prune]] = False
    return keep.reshape(norms.shape)


def expand(grid: torch.Tensor, block_shape: tuple[int, int],
           matrix_shape: tuple[int, int]) -> torch.Tensor:
    """Element mask of `matrix_shape` from a block grid (the padding is cropped away)."""
    grid = torch.as_tensor(grid)
    bh, bw = (int(x) for x in block_shape)
    expected = grid_shape(matrix_shape, (bh, bw))
    if tuple(grid.shape) != expected:
        raise ValueError(f"grid shape {tuple(grid.shape)} does not match a {matrix_shape[0]}x"
                         f"{matrix_shape[1]} matrix in {bh}x{bw} blocks (expected {expected})")
    full = grid.bool().repeat_interleave(bh, dim=0).repeat_interleave(bw, dim=1)
    return full[: int(matrix_shape[0]), : int(matrix_shape[1])]
