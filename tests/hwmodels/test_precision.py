"""Precision per operand (w4a8, w8a8, w8a16, w16a16, fp16; int8/int16 aliases): bytes, DSP
packing, MAC energy, aliases bit-identical."""
from __future__ import annotations

import math

import pytest
from hw_helpers import board

import hwmodels
from hwmodels.accelerator import (PRECISION_ALIASES, PRECISIONS, canonical_precision,
                                  precision_spec)
from hwmodels.energy import HOROWITZ_45NM
from hwmodels.mapping import gemm_schedule
from hwmodels.power import mac_pj_parts
from hwmodels.resources import MACS_PER_DSP, estimate, precision_cost
from hwmodels.sparsity import BlockShape, gemm_blocks
from hwmodels.workload import GemmOp

M, K, N = 128, 768, 768


def _counts(precision: str, *, dataflow: str = "ws", strategy: str = "tile-skip", mask=None,
            kind: str = "weight"):
    acc = board(pe_array={"precision": precision}, dataflow=dataflow, sparse_strategy=strategy)
    op = GemmOp("g", M, K, N, weight_name="w" if kind == "weight" else None, kind=kind)
    gb = gemm_blocks(mask) if mask is not None else None
    return gemm_schedule(op, acc, gb).counts


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_w4a8_halves_weight_bytes_dense(dataflow):
    w8, w4 = _counts("w8a8", dataflow=dataflow), _counts("w4a8", dataflow=dataflow)
    # ws: W once; os: W (576 KiB) exceeds the usable 256 KiB weight buffer at both widths, so
    # it is fetched once per 32-row tile of M
    passes = 1 if dataflow == "ws" else M // 32
    assert w8.weight_dram_bytes == K * N * passes
    assert w4.weight_dram_bytes == K * N * passes / 2
    assert w4.weight_buffer_write_bytes == w8.weight_buffer_write_bytes / 2
    assert w4.weight_buffer_read_bytes == w8.weight_buffer_read_bytes / 2
    # activations and everything else unchanged
    for f in ("input_dram_bytes", "output_dram_bytes", "input_buffer_read_bytes",
              "output_buffer_write_bytes", "executed_macs", "folds"):
        assert getattr(w4, f) == getattr(w8, f), f


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_w4a8_compact_block_is_128_bytes_plus_index(dataflow):
    """A kept 16x16 block at 4 bits is 128 bytes of weights plus its 2-byte block index."""
    mask = hwmodels.BlockMask.random(BlockShape(16, 16), (N, K), 0.5, 0)
    kept = int(mask.grid.sum())
    w4 = _counts("w4a8", dataflow=dataflow, strategy="compact", mask=mask)
    w8 = _counts("w8a8", dataflow=dataflow, strategy="compact", mask=mask)
    assert w4.weight_dram_bytes == kept * 128
    assert w4.index_dram_bytes == kept * 2
    # os keeps W resident across row tiles when it fits the usable 256 KiB: at 4 bits it does
    # (1,152 blocks x 130 B), at 8 bits (x 258 B) it is fetched once per 32-row tile of M
    passes = 1 if dataflow == "ws" else M // 32
    assert kept * 130 <= 262144 < kept * 258
    assert w8.weight_dram_bytes == kept * 256 * passes
    assert w8.index_dram_bytes == kept * 2 * passes
    assert w4.weight_buffer_write_bytes == kept * (128 + 2)


def test_attention_gemms_keep_activation_width():
    """The W operand of QK^T / AV is an activation: 8 bits at w4a8 as at w8a8."""
    w8 = _counts("w8a8", kind="activation")
    w4 = _counts("w4a8", kind="activation")
    assert w4 == w8
    assert w4.weight_dram_bytes == K * N


def test_w8a16_doubles_activation_bytes_only():
    w8, w16 = _counts("w8a8"), _counts("w8a16")
    assert w16.weight_dram_bytes == w8.weight_dram_bytes
    assert w16.output_dram_bytes == 2 * w8.output_dram_bytes == 2 * M * N


@pytest.mark.parametrize("precision,per_dsp", [("w4a8", 2), ("w8a8", 2), ("int8", 2),
                                               ("w8a16", 1), ("w16a16", 1), ("int16", 1),
                                               ("fp16", 1)])
def test_dsp_count_follows_packing(precision, per_dsp):
    acc = board(pe_array={"precision": precision, "rows": 33, "cols": 31})
    vector = acc.vector_unit.lanes * acc.vector_unit.dsp_per_lane
    assert MACS_PER_DSP[precision] == per_dsp
    assert estimate(acc).dsp == math.ceil(33 * 31 / per_dsp) + vector
    assert precision_cost(acc).array_dsp == math.ceil(33 * 31 / per_dsp)


def test_weight_buffer_port_keeps_activation_width():
    """w4a8's weight buffer still streams 8-bit attention operands: same banks as w8a8."""
    assert estimate(board(pe_array={"precision": "w4a8"})) == estimate(
        board(pe_array={"precision": "w8a8"}))


@pytest.mark.parametrize("alias", sorted(PRECISION_ALIASES))
def test_aliases_give_identical_reports(alias):
    new = PRECISION_ALIASES[alias]
    wl = hwmodels.builtin_workload("minilm-l6", 64)
    masks = {op.weight_name: hwmodels.BlockMask.random(BlockShape(16, 16), (op.n, op.k), 0.5, 1)
             for op in wl.ops if getattr(op, "weight_name", None)}
    for strategy in ("tile-skip", "compact"):
        a = hwmodels.simulate(wl, board(pe_array={"precision": alias}, sparse_strategy=strategy),
                              masks)
        b = hwmodels.simulate(wl, board(pe_array={"precision": new}, sparse_strategy=strategy),
                              masks)
        assert a.to_dict() == b.to_dict()


def test_int8_keeps_its_name_and_mac_energy():
    acc = board()
    assert acc.pe_array.precision == "int8"  # the preset's name is kept, not rewritten
    assert acc.energy.mac_pj == board(pe_array={"precision": "w8a8"}).energy.mac_pj


def test_fpga_mac_energy_per_precision():
    coeffs = board().power
    parts = {p: mac_pj_parts(coeffs, p) for p in PRECISIONS}
    assert parts["w4a8"] == parts["w8a8"]  # same DSP share and PE LUTs (stated packing)
    assert parts["w8a8"]["dsp"] == coeffs.dsp_pj_per_cycle / 2
    assert parts["w8a16"]["dsp"] == coeffs.dsp_pj_per_cycle
    for p in PRECISIONS:
        assert board(pe_array={"precision": p}).energy.mac_pj == pytest.approx(
            sum(parts[p].values()))


def test_table_mac_energy_accepts_either_name():
    table = {**HOROWITZ_45NM, "static_mw": 3000}
    assert board(energy_model="table", energy=table,
                 pe_array={"precision": "w4a8"}).energy.mac_pj == 0.2
    old = {**table, "mac_pj": {"int8": 0.3}}
    assert board(energy_model="table", energy=old,
                 pe_array={"precision": "w8a8"}).energy.mac_pj == 0.3


def test_precision_names():
    assert canonical_precision("int8") == "w8a8"
    assert precision_spec("w4a8").weight_bytes == 0.5
    assert precision_spec("int16").activation_bytes == 2
    with pytest.raises(ValueError, match="w4a8"):
        canonical_precision("int4")
    with pytest.raises(hwmodels.BoardError, match="pe_array.precision"):
        board(pe_array={"precision": "int4"})
