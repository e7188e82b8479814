"""Mappings against closed-form gold counts (exact equality where the formula is exact)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hwmodels import BlockMask, GemmOp
from hwmodels.mapping import gemm_schedule, vector_schedule
from hwmodels.pipeline import ideal_compute_cycles
from hwmodels.sparsity import column_tile_packing, gemm_blocks
from hwmodels.workload import VectorOp

from hw_helpers import board

BIG = 1 << 30  # buffers that hold everything

# SCALE-Sim 3.0.0 compute cycles with ideal memory (`python benchmarks/validate_scalesim.py`,
# docs/validation.md): (M, K, N, R, C, dataflow) -> cycles. Ours = SCALE-Sim + 1 (it
# reports the index of the last cycle).
SCALESIM_GOLD = [
    ((16, 32, 48, 8, 8, "ws"), 911), ((20, 37, 45, 8, 8, "ws"), 1259), ((7, 9, 5, 4, 4, "ws"), 101),
    ((33, 64, 31, 16, 8, "ws"), 1135), ((64, 48, 40, 8, 16, "ws"), 1691),
    ((5, 100, 3, 4, 8, "ws"), 474), ((128, 128, 128, 32, 32, "ws"), 3551),
    ((128, 768, 768, 32, 32, "ws"), 127871),
    ((16, 32, 48, 8, 8, "os"), 551), ((20, 37, 45, 8, 8, "os"), 917), ((7, 9, 5, 4, 4, "os"), 59),
    ((33, 64, 31, 16, 8, "os"), 1031), ((64, 48, 40, 8, 16, "os"), 1679),
    ((5, 100, 3, 4, 8, "os"), 219), ((128, 128, 128, 32, 32, "os"), 3039),
]


def _acc(r=32, c=32, df="ws", cap=BIG, db=True, strategy="tile-skip", preload="serial"):
    # the presets overlap the weight preload; the gold counts below are SCALE-Sim's (serial)
    return board(pe_array={"rows": r, "cols": c}, dataflow=df, double_buffering=db,
                 weight_preload=preload,
                 sparse_strategy=strategy,
                 buffers={b: {"capacity_bytes": cap} for b in ("weight", "input", "output")})


@pytest.mark.parametrize("case,gold", SCALESIM_GOLD)
def test_dense_compute_plus_fill_matches_scalesim_gold(case, gold):
    m, k, n, r, c, df = case
    s = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, df))
    assert int(s.stream.sum() + s.fill.sum()) - 1 == gold
    assert ideal_compute_cycles(m, k, n, r, c, df) - 1 == gold


@pytest.mark.parametrize("m,k,n,r,c", [(128, 768, 768, 32, 32), (50, 70, 90, 16, 8)])
def test_ws_dense_split_and_bytes(m, k, n, r, c):
    s = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, "ws"))
    folds = math.ceil(k / r) * math.ceil(n / c)
    assert s.folds == folds
    assert s.stream.sum() == folds * m  # compute
    assert s.fill.sum() == folds * (2 * r + c - 2)  # preload + fill + drain
    t = s.counts
    assert (t.weight_dram_bytes, t.input_dram_bytes, t.output_dram_bytes) == (k * n, m * k, m * n)
    assert t.executed_macs == m * k * n
    assert s.store_bytes.sum() == m * n


def test_ws_refetches_inputs_when_they_do_not_fit():
    m, k, n = 128, 768, 768
    acc = board(buffers={"input": {"capacity_bytes": 2 * (m * k - 1)}})  # usable half < M*K
    s = gemm_schedule(GemmOp("g", m, k, n), acc)
    assert s.counts.input_dram_bytes == m * k * math.ceil(n / 32)
    assert s.input_slots  # every fold's slice cycles through the ping-pong halves
    acc2 = board(buffers={"input": {"capacity_bytes": 2 * m * k}})
    s2 = gemm_schedule(GemmOp("g", m, k, n), acc2)
    assert s2.counts.input_dram_bytes == m * k
    assert not s2.input_slots  # resident: loaded once, no slot cycling


def test_ws_chunks_m_when_partial_sums_do_not_fit():
    m, k, n, c = 300, 64, 64, 32
    out_cap = 2 * 100 * c * 4  # usable half holds 100 rows of int32 partial sums
    acc = board(buffers={"output": {"capacity_bytes": out_cap}, "weight": {"capacity_bytes": 64}})
    s = gemm_schedule(GemmOp("g", m, k, n), acc)
    chunks = 3
    assert s.folds == chunks * 2 * 2
    assert s.stream.sum() == 2 * 2 * m
    assert s.counts.weight_dram_bytes == chunks * k * n  # W does not fit: re-streamed per chunk
    acc_w = board(buffers={"output": {"capacity_bytes": out_cap}})
    assert gemm_schedule(GemmOp("g", m, k, n), acc_w).counts.weight_dram_bytes == k * n


@pytest.mark.parametrize("m,k,n,r,c", [(128, 768, 768, 32, 32), (70, 50, 90, 16, 8)])
def test_os_dense_split_and_bytes(m, k, n, r, c):
    s = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, "os"))
    folds = math.ceil(m / r) * math.ceil(n / c)
    assert s.folds == folds
    assert s.stream.sum() == folds * k
    assert s.fill.sum() == folds * (r + c - 2)
    assert s.counts.weight_dram_bytes == k * n and s.counts.input_dram_bytes == m * k


def test_os_refetches_weights_per_row_tile_when_they_do_not_fit():
    m, k, n = 128, 768, 768
    acc = board(dataflow="os", buffers={"weight": {"capacity_bytes": k * n}})  # half < K*N
    s = gemm_schedule(GemmOp("g", m, k, n), acc)
    assert s.counts.weight_dram_bytes == k * n * math.ceil(m / 32)


def test_tile_skip_gold():
    # 64x64 weight, 16x16 blocks, 32x32 array: 4 weight tiles of 2x2 blocks each
    grid = np.zeros((4, 4), bool)
    grid[0, 0] = True  # param rows 0-15 (N), cols 0-15 (K): W tile (0, 0)
    grid[3, 2] = True  # N rows 48-63, K cols 32-47: W tile (k=1, n=1)
    mask = BlockMask(grid, (16, 16), (64, 64))
    m = 10
    s = gemm_schedule(GemmOp("g", m, 64, 64), _acc(32, 32, "ws"), gemm_blocks(mask))
    assert s.counts.tiles_skipped == 2 and s.folds == 2
    assert s.stream.sum() == 2 * m
    assert s.counts.weight_dram_bytes == 2 * 32 * 32  # kept tiles fetched densely
    assert s.counts.executed_macs == m * 2 * 32 * 32
    assert s.counts.useful_macs == m * 2 * 16 * 16
    # os: each column slab streams only its kept block rows along K (bk = 16 steps each)
    so = gemm_schedule(GemmOp("g", m, 64, 64), _acc(32, 32, "os"), gemm_blocks(mask))
    assert so.stream.sum() == 16 + 16


def test_compact_gold_and_imbalance():
    grid = np.zeros((4, 4), bool)  # param [N=64, K=64], 16x16 blocks
    grid[0, :] = True  # block column 0 (N 0-15): all 4 K blocks kept -> packed K 64
    grid[1, 0] = True  # block column 1 (N 16-31): 1 K block -> packed K 16
    mask = BlockMask(grid, (16, 16), (64, 64))
    s = gemm_schedule(GemmOp("g", 8, 64, 64), _acc(32, 32, "ws", strategy="compact"),
                      gemm_blocks(mask))
    # column tile 0 (N 0-31): max packed K = 64 -> 2 folds; column tile 1 empty -> 0 folds
    assert s.folds == 2
    assert s.load_imbalance == pytest.approx(64 / ((64 + 16) / 2))
    assert s.counts.index_dram_bytes == 5 * 2
    assert s.counts.weight_dram_bytes == 5 * 16 * 16
    assert s.counts.executed_macs == 8 * 5 * 256
    assert s.store_bytes.sum() == 8 * 64  # the empty column tile still writes its outputs


@pytest.mark.parametrize("df", ["ws", "os"])
@pytest.mark.parametrize("block", [(16, 16), (32, 1), (1, 16), (64, 64)])
def test_density_one_sparse_path_equals_dense_up_to_index(df, block):
    op = GemmOp("g", 100, 256, 192)
    mask = BlockMask.dense(block, (192, 256))
    dense = gemm_schedule(op, _acc(32, 32, df, strategy="dense"), gemm_blocks(mask))
    skip = gemm_schedule(op, _acc(32, 32, df, strategy="tile-skip"), gemm_blocks(mask))
    comp = gemm_schedule(op, _acc(32, 32, df, strategy="compact"), gemm_blocks(mask))
    for s in (skip, comp):
        assert np.array_equal(s.stream, dense.stream) and np.array_equal(s.fill, dense.fill)
        assert s.counts.weight_dram_bytes == dense.counts.weight_dram_bytes
        assert s.counts.input_dram_bytes == dense.counts.input_dram_bytes
    assert skip.counts.index_dram_bytes == 0
    # a block column wider than the array (64 > 32) is split over column tiles that share its
    # indices: they are fetched once
    assert comp.counts.index_dram_bytes == mask.kept_blocks * 2


def test_padded_block_shape_256x1_on_384x384():
    mask = BlockMask.random((256, 1), (384, 384), 0.5, seed=0)
    gb = gemm_blocks(mask)
    assert (gb.k, gb.n, gb.bk, gb.bn) == (384, 384, 1, 256)
    s = gemm_schedule(GemmOp("g", 128, 384, 384), _acc(32, 32, "ws", strategy="compact"), gb)
    pk = column_tile_packing(gb, 32)
    assert s.folds == int(np.sum(-(-pk.packed_k // 32)))
    assert s.counts.useful_macs == 128 * mask.kept_weights
    # edge blocks (rows 256..383 of the parameter = N columns 256..383) are costed at 128 wide
    assert pk.kept_elems.sum() == mask.kept_weights


def test_vector_schedule_counts():
    acc = board()
    op = VectorOp("sm", "softmax", 12 * 128 * 128)
    s = vector_schedule(op, acc)
    assert s.stream.sum() == pytest.approx(op.elements * 3 / acc.vector_unit.lanes, abs=s.folds)
    assert s.load_bytes.sum() == op.elements and s.store_bytes.sum() == op.elements
