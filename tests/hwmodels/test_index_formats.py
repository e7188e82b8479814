"""Index formats (block | bitmap | nm), index residency, and the two index/skip bugs of issue 11.

Every figure is a closed form worked out by hand in the comments, or measured with SCALE-Sim
3.0.0 (`python benchmarks/scalesim_nm.py`, the command that printed SCALESIM_NM_GOLD).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import BlockMask, GemmOp
from hwmodels.board_schema import BoardError
from hwmodels.mapping import gemm_schedule
from hwmodels.sparsity import (IndexFormat, gemm_blocks, index_bits_per_block_column,
                               index_layout, nm_slots)

from hw_helpers import board

BIG = 1 << 30  # buffers that hold everything


def _acc(r=32, c=32, df="ws", strategy="compact", cap=BIG, fmt=None):
    # serial preload: the gold figures here are SCALE-Sim's counting
    over = {"pe_array": {"rows": r, "cols": c}, "dataflow": df, "sparse_strategy": strategy,
            "weight_preload": "serial", "vector_overlap": "none",
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


# --------------------------------------------------------------------------- formats
def _small_mask() -> BlockMask:
    # param [out=3, in=8], 1x2 blocks -> GEMM K=8 (bk=2), N=3 (bn=1), grid[kb, nb] = param.T
    grid = np.array([[1, 0, 1, 1],   # block column 0: K 0-1, 4-5, 6-7 kept (3 blocks)
                     [0, 0, 0, 0],   # block column 1: empty, stores nothing
                     [0, 1, 0, 0]],  # block column 2: K 2-3 kept (1 block)
                    bool)
    return BlockMask(grid, (1, 2), (3, 8))


@pytest.mark.parametrize("fmt,per_column_bits", [
    ("block", [3 * 16, 0, 1 * 16]),  # 2-byte index per kept block
    ("bitmap", [4, 0, 4]),           # one bit per block of the block column (4 blocks)
    # groups of 4 K: column 0 keeps 2 and 4, column 2 keeps 2 and 0 -> N = 4 slots per group,
    # 2 groups, 2 bits each
    ("nm", [4 * 2 * 2, 0, 4 * 2 * 2]),
    ("nm:2", [2 * 4 * 1, 0, 2 * 4 * 1]),  # pairs: at most 2 kept -> N = 2, 4 groups, 1 bit
    ("nm:8", [6 * 1 * 3, 0, 6 * 1 * 3]),  # one group of 8: column 0 keeps 6 -> N = 6, 3 bits
])
def test_index_bits_per_format_by_hand(fmt, per_column_bits):
    gb = gemm_blocks(_small_mask())
    f = IndexFormat.parse(fmt)
    assert index_bits_per_block_column(gb, f, 2).tolist() == per_column_bits
    one_tile = index_layout(gb, 32, f, 2)  # all 3 columns in one tile: bits packed together
    assert one_tile.bytes.tolist() == [math.ceil(sum(per_column_bits) / 8)]
    per_col = index_layout(gb, 1, f, 2)  # one tile per column: each rounded up to bytes
    assert per_col.bytes.tolist() == [math.ceil(b / 8) for b in per_column_bits]


def test_a_wide_block_columns_indices_go_with_its_first_column_tile():
    # param [out=8, in=3], 4x1 blocks -> GEMM bn = 4: block column 0 = N 0-3, 1 = N 4-7; with
    # 2-column tiles each block column spans two tiles and is fetched with the first
    grid = np.array([[1, 1, 0], [0, 1, 0]], bool)
    gb = gemm_blocks(BlockMask(grid, (4, 1), (8, 3)))
    lay = index_layout(gb, 2, IndexFormat.parse("block"), 2)
    assert lay.bytes.tolist() == [2 * 2, 0, 1 * 2, 0]
    assert lay.new_groups.tolist() == [1, 0, 1, 0]


def test_index_format_parses_and_rejects_in_one_line():
    assert IndexFormat.parse("nm") == IndexFormat("nm", 4)
    assert str(IndexFormat.parse("nm")) == "nm:4"
    assert IndexFormat.parse("bitmap") == IndexFormat("bitmap")
    assert str(IndexFormat.parse("nm:16")) == "nm:16"
    for bad in ("csr", "nm:3", "nm:", "block:2", "nm:512"):
        with pytest.raises(ValueError, match="use block, bitmap, nm or nm:M"):
            IndexFormat.parse(bad)
    with pytest.raises(BoardError, match=r"^zcu102.yaml \(with overrides\): index_format: "):
        board(index_format="nm:3")
    assert board().index_format == "block"  # the default: results as before formats existed


def test_n_of_m_mask_keeps_n_in_every_group():
    mask = BlockMask.n_of_m(2, 4, (6, 10), seed=3)
    g = np.pad(mask.grid, ((0, 0), (0, 2))).reshape(6, 3, 4).sum(axis=2)
    assert (g[:, :2] == 2).all() and (g[:, 2] == 2).all()  # the partial last group (2 wide)
    assert nm_slots(gemm_blocks(mask), 4) == 2


def test_bitmap_decode_costs_cycles_when_the_mask_is_very_sparse():
    # ws 2x4 array, K = 1024, N = 4, 1:32 along K (1x1 blocks): packed K = 32 per column ->
    # 16 folds of 2 K rows. bitmap: 4 columns x 1024 bits = 4,096 bits for the tile, 256 per
    # fold = 4 decoder cycles against a 2-cycle preload -> 2 index cycles per fold.
    # block: 4 groups x 2 indices x 2 B = 16 B = 2 cycles -> 0. nm:32: 4 x 32 slots x 5 bits =
    # 640 bits, 40 per fold = 1 cycle -> 0.
    mask = BlockMask.n_of_m(1, 32, (4, 1024), seed=0)
    op = GemmOp("g", 8, 1024, 4)
    expect = {"bitmap": (16 * 2, 4 * 1024 // 8), "block": (0, 4 * 32 * 2), "nm:32": (0, 640 // 8)}
    for fmt, (cycles, idx_bytes) in expect.items():
        s = gemm_schedule(op, _acc(2, 4, "ws", fmt=fmt), gemm_blocks(mask))
        assert (int(s.index.sum()), s.counts.index_dram_bytes) == (cycles, idx_bytes), fmt
        assert s.stream.sum() == 16 * 8  # the format never changes the compute


# --------------------------------------------------------------------------- decode once
@pytest.mark.parametrize("w_cap,row_tiles_decoding", [(BIG, 1), (4096, 4)])
def test_os_decodes_resident_indices_once_not_per_row_tile(w_cap, row_tiles_decoding):
    # 2:4 (1x1 blocks) on 128x768x768, os 32x32: per slab 32 columns x 384 kept x 2 B = 24,576
    # B of block indices = 3,072 decoder cycles against a 384-cycle stream -> 2,688 per slab,
    # 24 slabs. Resident (W + indices fit the weight buffer): decoded for the first of the 4 row
    # tiles only; otherwise re-fetched and re-decoded for every row tile.
    mask = BlockMask.n_of_m(2, 4, (768, 768), seed=0)
    acc = board(pe_array={"rows": 32, "cols": 32}, dataflow="os", sparse_strategy="compact",
                weight_preload="serial",  # the 42,816 below is SCALE-Sim's (serial) counting
                buffers={"weight": {"capacity_bytes": w_cap}, "input": {"capacity_bytes": BIG},
                         "output": {"capacity_bytes": BIG}})
    s = gemm_schedule(GemmOp("g", 128, 768, 768), acc, gemm_blocks(mask))
    assert int(s.index.sum()) == row_tiles_decoding * 24 * 2688
    assert int(s.stream.sum() + s.fill.sum()) == 4 * 24 * (384 + 32 + 32 - 2)  # 42,816
    assert s.counts.index_dram_bytes == row_tiles_decoding * 768 * 384 * 2
    for fmt in ("bitmap", "nm"):  # 768 bits per column either way: 3,072 B = 384 cycles
        sf = gemm_schedule(GemmOp("g", 128, 768, 768), board(
            pe_array={"rows": 32, "cols": 32}, dataflow="os", sparse_strategy="compact",
            index_format=fmt, buffers={"weight": {"capacity_bytes": w_cap}}), gemm_blocks(mask))
        assert int(sf.index.sum()) == 0
        assert sf.counts.index_dram_bytes == row_tiles_decoding * 768 * 768 // 8


@pytest.mark.parametrize("w_cap,chunks_decoding", [(BIG, 1), (1024, 4)])
def test_ws_decodes_resident_indices_once_not_per_m_chunk(w_cap, chunks_decoding):
    # 2:4 on M=64, K=64, N=32, ws 8x8: packed K 32 -> 4 folds per column tile, 4 tiles.
    # Per fold 8 groups x 8 indices x 2 B = 128 B = 16 cycles - 8 preload = 8. The output
    # half (512 B) holds 16 rows of 8 int32 partial sums -> 4 M chunks.
    mask = BlockMask.n_of_m(2, 4, (32, 64), seed=1)
    acc = board(pe_array={"rows": 8, "cols": 8}, dataflow="ws", sparse_strategy="compact",
                weight_preload="serial",
                buffers={"weight": {"capacity_bytes": w_cap}, "input": {"capacity_bytes": BIG},
                         "output": {"capacity_bytes": 1024}})
    s = gemm_schedule(GemmOp("g", 64, 64, 32), acc, gemm_blocks(mask))
    assert s.folds == 4 * 16
    assert int(s.index.sum()) == chunks_decoding * 16 * 8


# --------------------------------------------------------------------------- SCALE-Sim N:M
# SCALE-Sim 3.0.0 sparse mode, ideal memory, measured with `python benchmarks/scalesim_nm.py`:
# (M, K, N, R, C, dataflow, N:M) -> (compute cycles, filter metadata in 32-bit words)
SCALESIM_NM_GOLD = {
    (16, 32, 16, 8, 8, "ws", "2:4"): (151, 16.0), (16, 32, 16, 8, 8, "os", "2:4"): (119, 16.0),
    (20, 64, 24, 8, 8, "ws", "2:4"): (503, 48.0), (20, 64, 24, 8, 8, "os", "2:4"): (413, 48.0),
    (33, 64, 31, 16, 8, "ws", "1:4"): (283, 31.0), (33, 64, 31, 16, 8, "os", "1:4"): (455, 31.0),
    (12, 48, 20, 4, 8, "ws", "2:8"): (233, 22.5), (12, 48, 20, 4, 8, "os", "2:8"): (197, 22.5),
}


@pytest.mark.parametrize("case", sorted(SCALESIM_NM_GOLD), ids=lambda c: "-".join(map(str, c)))
def test_compact_nm_matches_scalesim_sparse_mode(case):
    m, k, n, r, c, df, ratio = case
    keep, group = (int(v) for v in ratio.split(":"))
    cycles, words = SCALESIM_NM_GOLD[case]
    mask = gemm_blocks(BlockMask.n_of_m(keep, group, (n, k), seed=0))
    for fmt in ("block", f"nm:{group}"):
        s = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, df, fmt=fmt), mask)
        # SCALE-Sim reports the index of the last cycle: ours = its figure + 1
        assert int(s.stream.sum() + s.fill.sum()) == cycles + 1
    # with N:M metadata the decoder keeps up: no index cycles, and the bytes are SCALE-Sim's
    assert int(s.index.sum()) == 0
    assert s.counts.index_dram_bytes == words * 4


@settings(max_examples=int(os.environ.get("HW_HYPOTHESIS_EXAMPLES", 40)), deadline=None)
@given(m=st.integers(1, 80), k=st.integers(1, 200), n=st.integers(1, 200),
       block=st.sampled_from([(1, 1), (4, 4), (32, 1), (1, 16), (5, 3), (48, 2)]),
       density=st.floats(0.0, 1.0), df=st.sampled_from(["ws", "os"]),
       arr=st.sampled_from([(4, 4), (8, 16), (16, 8)]), cap=st.sampled_from([1024, BIG]),
       seed=st.integers(0, 100))
def test_the_format_changes_only_index_bytes_and_index_cycles(m, k, n, block, density, df, arr,
                                                              cap, seed):
    gb = gemm_blocks(BlockMask.random(block, (n, k), density, seed))
    base = None
    for fmt in ("block", "bitmap", "nm", "nm:16"):
        s = gemm_schedule(GemmOp("g", m, k, n), _acc(*arr, df, cap=cap, fmt=fmt), gb)
        lay = index_layout(gb, arr[1], IndexFormat.parse(fmt), 2)
        passes = s.counts.index_dram_bytes / max(lay.total_bytes, 1)
        assert passes == int(passes) and (lay.total_bytes == 0 or passes >= 1)
        if base is None:
            base = s
            continue
        assert np.array_equal(s.stream, base.stream) and np.array_equal(s.fill, base.fill)
        assert s.counts.executed_macs == base.counts.executed_macs


def test_cli_index_format_option():
    import json

    from click.testing import CliRunner

    from codesign.cli import main

    args = ["simulate-gemm", "--dataflow", "os", "--array", "32x32", "--block", "16x16",
            "--sparse-strategy", "compact", "--json"]
    runs = {fmt: CliRunner().invoke(main, args + (["--index-format", fmt] if fmt else []))
            for fmt in (None, "block", "bitmap")}
    out = {fmt: json.loads(r.output) for fmt, r in runs.items()}
    assert out[None]["index_format"] == "block" and out[None] == {**out["block"]}
    # 768x768 at 16x16 blocks: 48 block columns of 48 blocks, about half kept; bitmap = 48 bits
    # = 6 B per block column, 288 B per pass over W, fetched for each of the 4 row tiles of
    # M = 128 (W does not stay in zcu102's weight buffer)
    assert out["bitmap"]["index_bytes"] == 4 * 288 and out["bitmap"]["index_format"] == "bitmap"
    bad = CliRunner().invoke(main, args + ["--index-format", "csr"])
    assert bad.exit_code != 0 and "use block, bitmap, nm or nm:M" in bad.output
