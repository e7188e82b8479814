"""PE-balanced block pruning: the same kept count in every block row that compaction runs side
by side (column-balanced block pruning, Peng et al., ISQED 2021, on this tool's accelerator).

What is modelled. Under compaction (`hwmodels.mapping`, compact path) a column tile of C PE
columns holds the GEMM block columns intersecting it, one per PE-column group, each packing its
kept blocks along K; the longest one sets the tile's time, so the op's load imbalance (sum over
tiles of the longest packed K over the mean, `Schedule.load_imbalance`) is 1.0 exactly when the
block columns of every tile keep the same number of blocks. A GEMM block column is a block ROW
of the checkpoint parameter (bh output features x all input blocks), here called a *lane*; the
lanes of one tile (tiles sharing a straddling lane merged) are a *balance group*,
`hwmodels.sparsity.balance_groups(out_features, bh, C)`: the group follows the array width C,
so a balanced mask depends on the accelerator.

Selection (`balanced_keep`), for a matrix that keeps T blocks (the same T as unbalanced
pruning, round((1 - ratio) * nblocks)):
1. every lane orders its blocks by saliency (most salient first; ties as `blocks.prune_mask`
   breaks them: of equal scores the later grid position is kept first);
2. a group of n lanes keeps k blocks per lane; raising k by one (a *level*) keeps n more blocks
   and gains the summed saliency of each lane's next block. Levels are taken greedily by gain
   per block (ties: lower group first) while they fit in T (optimal when groups have the same
   size: each group's level gains do not increase);
3. the remainder, r = T minus the levels taken (0 unless T is not a multiple of the group size:
   r is smaller than every group that still has levels), goes to ONE group: the one whose r most
   salient next-level blocks sum highest (ties: lower group), one extra block in each of its r
   lanes with the most salient next block. Only that group is then unbalanced: its tile's
   packed K is k+1 at most, k for the others (one group, not r, keeps the imbalance least).

So the per-matrix kept count is exact, every lane keeps its most salient blocks, and with
r = 0 (and bw dividing in_features, so no partial block along K) compaction's imbalance is 1.0.
Ignored: saliency interactions (importance is additive); a partial block along K (in_features
not a multiple of bw) packs shorter, so a group keeping it in some lanes only is not exactly
balanced.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hwmodels.sparsity import balance_groups


@dataclass(frozen=True)
class PEBalance:
    """Balance kept blocks over the PE-column groups of an array `cols` PE columns wide."""

    cols: int

    def __post_init__(self) -> None:
        if int(self.cols) < 1:
            raise ValueError(f"PEBalance: cols {self.cols} must be >= 1 (the PE array width)")

    @classmethod
    def of(cls, accelerator: Any) -> "PEBalance":
        """The balance of a `hwmodels.Accelerator` (its PE array's columns)."""
        return cls(int(accelerator.pe_array.cols))

    def groups(self, matrix_shape: tuple[int, int],
               block_shape: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """Balance groups of a parameter (out, in) in blocks (bh, bw): block-row ranges."""
        return balance_groups(int(matrix_shape[0]), int(block_shape[0]), int(self.cols))


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Unique ranks, higher = kept first: the order of `blocks.prune_mask` (stable ascending
    argsort of the flat grid, so of equal scores the lower grid position is pruned first)."""
    flat = scores.reshape(-1)
    ranks = np.empty(flat.size, np.int64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    return ranks.reshape(scores.shape)


def balanced_keep(scores: np.ndarray, keep: int,
                  groups: Sequence[tuple[int, int]]) -> np.ndarray:
    """Bool grid (True = kept) of exactly `keep` blocks, balanced over `groups` (block-row
    ranges covering every row of `scores`): see the module docstring."""
    scores = np.asarray(scores, dtype=np.float64)
    lanes, width = scores.shape
    if not 0 <= keep <= scores.size:
        raise ValueError(f"balanced_keep: keep {keep} must lie in [0, {scores.size}]")
    if [g for r in groups for g in range(*r)] != list(range(lanes)):
        raise ValueError(f"balanced_keep: groups {list(groups)[:3]}... do not cover the "
                         f"{lanes} block rows in order")
    ranks = _ranks(scores)
    order = np.argsort(-ranks, axis=1, kind="stable")  # per lane, most salient first
    ordered = np.take_along_axis(scores, order, axis=1)
    sizes = [hi - lo for lo, hi in groups]
    gains = [ordered[lo:hi].sum(axis=0) for lo, hi in groups]  # per level
    levels = [0] * len(groups)
    heap = [(-gains[g][0] / sizes[g], g) for g in range(len(groups)) if width]
    heapq.heapify(heap)
    left = int(keep)
    while heap:
        _, g = heapq.heappop(heap)
        if sizes[g] > left:
            continue  # never fits again: `left` only shrinks
        levels[g] += 1
        left -= sizes[g]
        if levels[g] < width:
            heapq.heappush(heap, (-gains[g][levels[g]] / sizes[g], g))
    extra = _remainder_lanes(ordered, np.take_along_axis(ranks, order, axis=1), groups, levels,
                             left)
    grid = np.zeros(scores.shape, bool)
    for (lo, hi), k in zip(groups, levels):
        rows = np.arange(lo, hi)[:, None]
        grid[rows, order[lo:hi, :k]] = True
    for lane, k in extra:
        grid[lane, order[lane, k]] = True
    return grid


def _remainder_lanes(ordered: np.ndarray, ranked: np.ndarray,
                     groups: Sequence[tuple[int, int]], levels: list[int],
                     left: int) -> list[tuple[int, int]]:
    """(lane, level) of the `left` remainder blocks: all in one group (module docstring, 3)."""
    if left == 0:
        return []
    best: tuple[float, int, list[int]] | None = None
    for g, ((lo, hi), k) in enumerate(zip(groups, levels)):
        if k >= ordered.shape[1]:
            continue
        nxt = ordered[lo:hi, k]
        # the lanes' next blocks, most salient first (ties: the block prune_mask keeps first)
        pos = np.argsort(-ranked[lo:hi, k], kind="stable")
        chosen = [lo + int(i) for i in pos[:left]]
        total = float(nxt[pos[:left]].sum())
        if best is None or total > best[0]:
            best = (total, g, chosen)
    assert best is not None and len(best[2]) == left, "remainder larger than a group"
    k = levels[best[1]]
    return [(lane, k) for lane in best[2]]


def keep_blocks(scores: Any, ratio: float, *, balance: PEBalance | None,
                matrix_shape: tuple[int, int], block_shape: tuple[int, int]) -> Any:
    """The kept-block grid (torch bool) of one matrix: `blocks.prune_mask(scores, ratio)`
    without `balance`, else `balanced_keep` with the same kept count."""
    import torch

    from codesign.pruning.blocks import prune_mask

    keep = prune_mask(scores, ratio)  # validates the ratio; the unbalanced count
    if balance is None:
        return keep
    grid = balanced_keep(scores.detach().double().cpu().numpy(), int(keep.sum()),
                         balance.groups(matrix_shape, block_shape))
    return torch.from_numpy(grid)


__all__ = ["PEBalance", "balanced_keep", "keep_blocks"]
