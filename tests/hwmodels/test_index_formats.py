"""Index formats (block | bitmap | nm), index residency, and the two index/skip bugs of issue 11.

Every figure is a closed form worked out by hand in the comments, or measured with SCALE-Sim
3.0.0 (`python benchmarks/scalesim_nm.py`, the command that printed SCALESIM_NM_GOLD).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from hwmodels import BlockMask, GemmOp
from hwmodels.mapping import gemm_schedule
from hwmodels.sparsity import gemm_blocks

from hw_helpers import board

BIG = 1 << 30  # buffers that hold everything


def _acc(r=32, c=32, df="ws", strategy="compact", cap=BIG, fmt=None):
    over = {"pe_array": {"rows": r, "cols": c}, "dataflow": df, "sparse_strategy": strategy,
            "buffers": {b: {"capacity_bytes": cap} for b in ("weight", "input", "output")}}
    if fmt is not None:
        over["index_format"] = fmt
    return board(**over)


# --------------------------------------------------------------------------- bug (a)
def _two_block_mask() -> BlockMask:
    # param [N=64, K=64], 16x16 blocks: block (N 0-15, K 0-15) and block (N 48-63, K 32-47)
    grid = np.zeros((4, 4), bool)
    grid[0, 0] = True
    grid[3, 2] = True
    return BlockMask(grid, (16, 16), (64, 64))


@pytest.mark.parametrize("rows", [8, 16, 32, 64])
def test_os_tile_skip_skips_whole_block_rows_along_k_whatever_the_array_height(rows):
    # OS: a PE row holds an output row (M), a PE column an output column (N), K is time. A K
    # step can be skipped for a column slab when W[k, n] = 0 for every n of the slab, so the
    # skip unit along K is the mask's block height bk (16), never the array height R.
    # Slab 0 (N 0-31) keeps K 0-15, slab 1 (N 32-63) keeps K 32-47: 16 + 16 streamed steps per
    # row tile, for M = 10 one row tile on any R >= 10 (two on R = 8).
    s = gemm_schedule(GemmOp("g", 10, 64, 64), _acc(rows, 32, "os", "tile-skip"),
                      gemm_blocks(_two_block_mask()))
    row_tiles = math.ceil(10 / rows)
    assert s.stream.sum() == row_tiles * (16 + 16)
    # the skip unit: (K block row x column slab), 4 x 2 per row tile, 2 of them kept
    assert (s.counts.tiles_total, s.counts.tiles_skipped) == (row_tiles * 8, row_tiles * 6)


def test_os_tile_skip_saves_the_same_compute_on_every_array_height():
    # the case: 128x768x768, 16x16 blocks at 50 %, os on 16/32/64 x 32; streamed K per
    # row tile is sum over slabs of bk x (block rows kept in the slab), independent of R
    mask = BlockMask.random((16, 16), (768, 768), 0.5, seed=0)
    gb = gemm_blocks(mask)
    slab_rows = gb.grid.reshape(48, 24, 2).any(axis=2)  # [K block rows, 24 slabs of 32 = 2 bn]
    per_row_tile = 16 * int(slab_rows.sum())
    for rows in (16, 32, 64):
        s = gemm_schedule(GemmOp("g", 128, 768, 768), _acc(rows, 32, "os", "tile-skip"), gb)
        assert s.stream.sum() == (128 // rows) * per_row_tile


# --------------------------------------------------------------------------- bug (b)
@pytest.mark.parametrize("df", ["ws", "os"])
@pytest.mark.parametrize("cap", [BIG, 4096])
def test_wide_block_indices_are_fetched_once_not_per_column_tile(df, cap):
    # 256x1 blocks on 384x384: a block column is 256 (or 128) output columns wide, i.e. 8 (or
    # 4) column tiles of 32; its indices are the same for all of them and are fetched once
    mask = BlockMask.random((256, 1), (384, 384), 0.5, seed=0)
    s = gemm_schedule(GemmOp("g", 128, 384, 384), _acc(32, 32, df, cap=cap), gemm_blocks(mask))
    passes = 1
    if cap != BIG:  # W does not fit: re-fetched per row tile (os) or per M chunk (ws: the
        # 2,048 B output half holds 16 rows of 32 int32 partial sums)
        passes = math.ceil(128 / 32) if df == "os" else math.ceil(128 / (cap // 2 // (32 * 4)))
    assert mask.kept_blocks * 2 == 768
    assert s.counts.index_dram_bytes == passes * 768
