"""BlockMask contract, orientation, padding, tile occupancy and packing against brute force."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels import BlockMask, BlockShape, edge_sizes, parse_dims
from hwmodels.sparsity import (column_tile_packing, gemm_blocks, nonzeros_per_pe_column,
                               nonzeros_per_pe_row, tile_occupancy)


def test_block_shape_parses_once_and_prints_back():
    assert BlockShape.parse("16x16") == (16, 16)
    assert BlockShape.parse(" 32X1 ") == BlockShape(32, 1)
    assert BlockShape.parse("4 × 8") == (4, 8)
    assert str(BlockShape.parse((256, 1))) == "256x1"
    bh, bw = BlockShape(32, 1)
    assert (bh, bw, BlockShape(32, 1).size) == (32, 1, 32)
    for bad in ("16", "0x4", "ax4", "4x-1", "", "4x4x4", 16, None):
        with pytest.raises(ValueError, match="is not a block shape; write ROWSxCOLS"):
            BlockShape.parse(bad)
    with pytest.raises(ValueError, match="write it in quotes"):
        BlockShape.parse(16)  # what YAML makes of an unquoted 16
    with pytest.raises(ValueError, match="is not a PE array"):
        parse_dims("32", "PE array")


def test_mask_block_shape_is_typed():
    m = BlockMask.dense((32, 1), (64, 64))
    assert isinstance(m.block_shape, BlockShape) and str(m.block_shape) == "32x1"


def test_grid_shape_is_checked_and_padding_is_ceil():
    m = BlockMask.dense((256, 1), (384, 384))  # 384 rows = 1.5 blocks of 256
    assert m.grid.shape == (2, 384)
    assert m.density == 1.0
    with pytest.raises(ValueError, match=r"expected \(2, 384\)"):
        BlockMask(np.ones((1, 384), bool), (256, 1), (384, 384))


def test_density_counts_edge_blocks_at_real_size():
    grid = np.zeros((2, 384), bool)
    grid[1, :] = True  # only the partial second block row (128 of 384 rows) is kept
    m = BlockMask(grid, (256, 1), (384, 384))
    assert m.block_density == 0.5
    assert m.density == pytest.approx(128 / 384)
    assert m.kept_weights == 128 * 384
    assert m.to_dense().sum() == m.kept_weights


def test_random_keeps_exact_count_and_is_seeded():
    a = BlockMask.random((16, 16), (768, 3072), 0.3, seed=7)
    b = BlockMask.random((16, 16), (768, 3072), 0.3, seed=7)
    assert a.kept_blocks == round(0.3 * 48 * 192)
    assert a == b
    assert a != BlockMask.random((16, 16), (768, 3072), 0.3, seed=8)


def test_gemm_orientation_is_the_transpose():
    # parameter [out=64, in=32], block 32x1: 32 output rows x 1 input column
    grid = np.zeros((2, 32), bool)
    grid[1, 5] = True  # output rows 32..63, input column 5
    gb = gemm_blocks(BlockMask(grid, (32, 1), (64, 32)))
    assert (gb.k, gb.n, gb.bk, gb.bn) == (32, 64, 1, 32)
    dense_w = np.zeros((32, 64), bool)  # W[K, N] = weight.T
    dense_w[5, 32:64] = True
    expanded = np.repeat(np.repeat(gb.grid, gb.bk, 0), gb.bn, 1)[: gb.k, : gb.n]
    assert np.array_equal(expanded, dense_w)


def _brute_occupancy(mask: BlockMask, r: int, c: int) -> np.ndarray:
    w = mask.to_dense().T  # [K, N]
    k, n = w.shape
    out = np.zeros((math.ceil(k / r), math.ceil(n / c)), bool)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = w[i * r:(i + 1) * r, j * c:(j + 1) * c].any()
    return out


@pytest.mark.parametrize("block,shape,tile", [
    ((16, 16), (96, 64), (32, 32)), ((32, 1), (96, 80), (16, 32)), ((1, 16), (40, 96), (32, 8)),
    ((256, 1), (384, 384), (32, 32)), ((5, 7), (33, 29), (8, 6)), ((48, 48), (96, 96), (32, 32)),
])
def test_tile_occupancy_matches_brute_force(block, shape, tile):
    for seed in range(3):
        m = BlockMask.random(block, shape, 0.4, seed)
        got = tile_occupancy(gemm_blocks(m), *tile)
        assert np.array_equal(got, _brute_occupancy(m, *tile))


@pytest.mark.parametrize("block,shape,cols", [((16, 16), (96, 64), 32), ((1, 16), (40, 96), 8),
                                              ((5, 7), (33, 29), 6), ((48, 4), (96, 96), 32)])
def test_column_packing_matches_brute_force(block, shape, cols):
    m = BlockMask.random(block, shape, 0.5, seed=3)
    gb = gemm_blocks(m)
    pk = column_tile_packing(gb, cols)
    w = m.to_dense().T  # [K, N]
    bn = gb.bn
    for j in range(math.ceil(gb.n / cols)):
        lo, hi = j * cols, min((j + 1) * cols, gb.n)
        bcols = range(lo // bn, math.ceil(hi / bn))
        lengths = [int(w[:, b * bn].sum()) for b in bcols]  # a block column is uniform
        assert pk.packed_k[j] == max(lengths)
        assert pk.groups[j] == len(lengths)
        assert pk.kept_elems[j] == int(w[:, lo:hi].sum())
        span = w[:, bcols[0] * bn:min((bcols[-1] + 1) * bn, gb.n)]
        assert pk.used_k[j] == int(span.any(axis=1).sum())
    assert pk.used_k_total == int(w.any(axis=1).sum())


def test_nonzeros_per_pe_row_and_column_sum_to_kept_weights():
    m = BlockMask.random((4, 8), (100, 60), 0.5, seed=1)
    gb = gemm_blocks(m)
    assert nonzeros_per_pe_column(gb, 16).sum() == m.kept_weights
    assert nonzeros_per_pe_row(gb, 16).sum() == m.kept_weights


def test_edge_sizes_last_block_holds_the_remainder():
    assert edge_sizes(10, 4).tolist() == [4, 4, 2]
    assert edge_sizes(384, 256).tolist() == [256, 128]  # 256x1 on MiniLM's 384 rows
    assert edge_sizes(12, 4).tolist() == [4, 4, 4]
    assert edge_sizes(3, 8).tolist() == [3]
    assert edge_sizes(10, 4).dtype == np.int64
    with pytest.raises(ValueError, match="edge_sizes"):
        edge_sizes(0, 4)


@given(total=st.integers(1, 5000), block=st.integers(1, 600))
def test_edge_sizes_cover_the_axis(total, block):
    sizes = edge_sizes(total, block)
    assert sizes.size == math.ceil(total / block) and int(sizes.sum()) == total
    assert (sizes[:-1] == block).all() and 1 <= sizes[-1] <= block


def test_mask_block_sizes_are_the_edge_sizes():
    mask = BlockMask.dense((256, 16), (384, 40))
    rows, cols = mask.block_sizes()
    assert rows.tolist() == [256, 128] and cols.tolist() == [16, 16, 8]
