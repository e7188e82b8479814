"""Which PE-array tiles a block mask occupies, and compaction's packing per column tile.

What is modelled: for a mask in GEMM orientation (`hwmodels.sparsity.GemmBlocks`) and an array
shape, the weight tiles that hold at least one kept block (tile skipping), and per column tile of
PE columns the packed K lengths, gathered inputs, kept weights and blocks of compaction
(hwmodels.mapping describes how the schedules use them). Everything is exact integer arithmetic
over the block grid (running sums, `reduceat`, reshapes), no per-tile Python loop. Ignored: what
the hardware does with them (mapping's business).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


class GemmGrid(Protocol):
    """What these functions read of a mask in GEMM orientation (`hwmodels.sparsity.GemmBlocks`,
    the class every caller passes; a protocol here, so this module needs nothing from it)."""

    grid: np.ndarray
    bk: int
    bn: int
    k: int
    n: int
    k_sizes: np.ndarray
    n_sizes: np.ndarray
    kept_k_per_column: np.ndarray
    kept_per_column: np.ndarray
    used_k_total: int


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """int64 [..., len + 1]: 0 then the running sums of `values` along its last axis (exact
    integer range sums; leading axes: one row per mask of a stack)."""
    out = np.zeros(values.shape[:-1] + (values.shape[-1] + 1,), np.int64)
    np.cumsum(values, axis=-1, out=out[..., 1:])
    return out


@functools.lru_cache(maxsize=1024)
def _tile_ranges(total: int, tile: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """For each tile of `tile` elements along an axis of `total`, the half-open range of block
    indices that intersect it (a block straddling two tiles belongs to both); memoised,
    read-only."""
    nt = math.ceil(total / tile)
    starts = np.arange(nt, dtype=np.int64) * tile
    ends = np.minimum(starts + tile, total)
    lo, hi = starts // block, -(-ends // block)
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def _range_any(grid: np.ndarray, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """any(grid[lo_t:hi_t]) along `axis` (-2 or -1; leading axes are a stack of grids) for
    every range t, via prefix sums (ranges may overlap)."""
    if axis == -2:
        cs = np.zeros(grid.shape[:-2] + (grid.shape[-2] + 1, grid.shape[-1]), np.int32)
        np.cumsum(grid, axis=-2, out=cs[..., 1:, :])
        return (cs[..., hi, :] - cs[..., lo, :]) > 0
    cs = np.zeros(grid.shape[:-1] + (grid.shape[-1] + 1,), np.int32)
    np.cumsum(grid, axis=-1, out=cs[..., 1:])
    return (cs[..., hi] - cs[..., lo]) > 0


def _tile_any(grid: np.ndarray, total: int, tile: int, block: int, axis: int) -> np.ndarray:
    """any(grid over the blocks intersecting each tile of `tile` elements) along `axis` (-2 or
    -1, of `total` elements in blocks of `block`; leading axes are a stack of grids). When the
    tile is a multiple of the block the tiles own disjoint runs of tile/block blocks (a
    reshape); otherwise `_range_any`."""
    if tile % block:
        lo, hi = _tile_ranges(total, tile, block)
        return _range_any(grid, lo, hi, axis)
    f = tile // block
    if f == 1:
        return np.array(grid, bool)
    nb = grid.shape[axis]
    nt = -(-nb // f)
    if nt * f != nb:  # pad the last tile's missing blocks as not kept
        shape = list(grid.shape)
        shape[axis] = nt * f - nb
        grid = np.concatenate([grid, np.zeros(shape, bool)], axis=axis)
    if axis == -2:
        return grid.reshape(grid.shape[:-2] + (nt, f, grid.shape[-1])).any(axis=-2)
    return grid.reshape(grid.shape[:-1] + (nt, f)).any(axis=-1)


def tile_occupancy(gb: GemmGrid, tile_k: int, tile_n: int) -> np.ndarray:
    """bool [ceil(K/tile_k), ceil(N/tile_n)]: True where at least one kept block intersects the
    PE-array weight tile (tile skipping may skip only the False tiles)."""
    rows = _tile_any(gb.grid, gb.k, tile_k, gb.bk, axis=-2)  # [nKt, nNb]
    return _tile_any(rows, gb.n, tile_n, gb.bn, axis=-1)  # [nKt, nNt]


@dataclass(frozen=True, eq=False)
class ColumnPacking:
    """Compaction along K, per column tile of PE columns (see `column_tile_packing`)."""

    packed_k: np.ndarray  # [nNt] max packed K length over the tile's block columns (sets time)
    mean_k: np.ndarray  # [nNt] mean packed K length over them (the balanced ideal)
    used_k: np.ndarray  # [nNt] K positions used by any of them (inputs to gather)
    groups: np.ndarray  # [nNt] block columns (= PE column groups, index streams) in the tile
    kept_elems: np.ndarray  # [nNt] kept weights whose output column lies in the tile
    kept_blocks: np.ndarray  # [nNt] kept blocks of the tile's block columns (indices to store)
    gathered_k: np.ndarray  # [nNt] sum over the tile's groups of their packed K (input reads)
    used_k_total: int  # K positions used by any kept block of the matrix


def column_tile_packing(gb: GemmGrid, tile_n: int) -> ColumnPacking:
    """Compaction along K per column tile of `tile_n` PE columns.

    Each block column (bn output features) intersecting a column tile occupies its own group of
    PE columns with its own gathered input stream, and its kept blocks are packed along K. The
    group with the longest packed K sets the tile's time; a block column straddling two tiles
    belongs to both (its values are split by column, its indices are needed by both).
    `gb` may be a stack of masks of one shape (`GridStack`): every array then has a leading
    axis over them, with the same integers per mask.
    """
    packed = gb.kept_k_per_column  # [..., nNb]
    lo, hi = _tile_ranges(gb.n, tile_n, gb.bn)
    groups = hi - lo
    if int(groups.max()) == 1:  # every tile within one block column
        packed_k = gathered = used_k = packed[..., lo]
        kept_blocks = gb.kept_per_column[..., lo]
    else:
        # tiles cover the block columns in order, neighbours sharing at most one: a range is
        # [lo_t, lo_{t+1}) plus block column hi_t - 1 (reduceat's segments, exact integers)
        packed_k = np.maximum(np.maximum.reduceat(packed, lo, axis=-1), packed[..., hi - 1])
        cs = prefix_sums(packed)
        gathered = cs[..., hi] - cs[..., lo]
        cb = prefix_sums(gb.kept_per_column)
        kept_blocks = cb[..., hi] - cb[..., lo]
        used_k = gb.k_sizes @ _tile_any(gb.grid, gb.n, tile_n, gb.bn, axis=-1).astype(np.int64)
    return ColumnPacking(packed_k=packed_k, mean_k=gathered / groups, used_k=used_k,
                         groups=groups, kept_elems=_kept_elems(gb, tile_n), kept_blocks=kept_blocks,
                         gathered_k=gathered, used_k_total=gb.used_k_total)


def _kept_elems(gb: GemmGrid, tile_n: int) -> np.ndarray:
    """int64 [..., nNt]: kept weights whose output column lies in each column tile, from the
    running sum over output columns at the tile edges (output column p lies in block column
    p // bn)."""
    packed = gb.kept_k_per_column
    if tile_n % gb.bn == 0:  # each block column inside one tile
        per_block_column = packed * gb.n_sizes
        return np.add.reduceat(per_block_column, np.arange(0, per_block_column.shape[-1],
                                                           tile_n // gb.bn), axis=-1)
    edges = np.minimum(np.arange(0, gb.n + tile_n, tile_n, dtype=np.int64), gb.n)
    q, r = edges // gb.bn, edges % gb.bn
    cs = prefix_sums(packed * gb.n_sizes)  # kept weights of the block columns before
    padded = np.concatenate([packed, np.zeros(packed.shape[:-1] + (1,), packed.dtype)], axis=-1)
    prefix = cs[..., q] + r * padded[..., q]
    return prefix[..., 1:] - prefix[..., :-1]


class GridStack:
    """Masks that share grid, block and matrix shapes, stacked along a leading axis: what
    `column_tile_packing` and `tile_occupancy` read, one row per mask, from the per-mask sums
    memoised on each (`hwmodels.sparsity.GemmBlocks`)."""

    def __init__(self, gbs: "Sequence[GemmGrid]"):
        g = gbs[0]
        self.members = tuple(gbs)
        self.bk, self.bn, self.k, self.n = g.bk, g.bn, g.k, g.n
        self.k_sizes, self.n_sizes = g.k_sizes, g.n_sizes

    @functools.cached_property
    def grid(self) -> np.ndarray:  # bool [S, nKb, nNb]
        return np.stack([x.grid for x in self.members])

    @functools.cached_property
    def kept_k_per_column(self) -> np.ndarray:  # int64 [S, nNb]
        return np.stack([x.kept_k_per_column for x in self.members])

    @functools.cached_property
    def kept_per_column(self) -> np.ndarray:  # int64 [S, nNb]
        return np.stack([x.kept_per_column for x in self.members])

    @functools.cached_property
    def used_k_total(self) -> np.ndarray:  # int64 [S]
        return np.array([x.used_k_total for x in self.members], np.int64)


def balance_groups(n: int, bn: int, cols: int) -> tuple[tuple[int, int], ...]:
    """The block columns (GEMM orientation: W's N = out_features in blocks of `bn`) that
    compaction runs side by side, as half-open ranges [lo, hi) of block-column indices, in
    order, covering all ceil(n / bn) of them.

    A column tile of `cols` PE columns holds every block column intersecting it, each in its own
    PE-column group, and the one with the longest packed K sets the tile's time
    (`column_tile_packing`); its load imbalance is 1.0 exactly when they all pack the same K.
    Column tiles that share a block column (one straddling a tile edge) form one group. Depends
    on the array width only (not on K, the row count or the dataflow)."""
    lo, hi = _tile_ranges(n, cols, bn)
    groups: list[tuple[int, int]] = []
    start, end = int(lo[0]), int(hi[0])
    for a, b in zip(lo[1:].tolist(), hi[1:].tolist()):
        if a < end:  # shares a block column with the group so far
            end = max(end, b)
        else:
            groups.append((start, end))
            start, end = a, b
    groups.append((start, end))
    return tuple(groups)
