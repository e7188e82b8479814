"""Action counts against closed-form gold equations (exact), and pricing = counts x table."""
from __future__ import annotations

import math

import pytest

import hwmodels
from hwmodels import ActionCounts, GemmOp, price
from hwmodels.energy import COMPONENTS
from hwmodels.mapping import gemm_schedule, vector_schedule
from hwmodels.workload import VectorOp

from hw_helpers import board

BIG = 1 << 30  # buffers that hold everything
ACC_BYTES = 4  # int32 partial sums of an int8 array


def _acc(r, c, dataflow):
    return board(pe_array={"rows": r, "cols": c}, dataflow=dataflow, sparse_strategy="dense",
                 buffers={b: {"capacity_bytes": BIG} for b in ("weight", "input", "output")})


@pytest.mark.parametrize("m,k,n,r,c", [(128, 768, 768, 32, 32), (50, 70, 90, 16, 8),
                                       (7, 9, 5, 4, 4)])
def test_dense_ws_counts_equal_closed_forms(m, k, n, r, c):
    counts = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, "ws")).counts
    tiles_k, tiles_n = math.ceil(k / r), math.ceil(n / c)
    assert counts == ActionCounts(
        executed_macs=m * k * n, useful_macs=m * k * n, dense_macs=m * k * n,
        weight_dram_bytes=k * n, index_dram_bytes=0, input_dram_bytes=m * k,
        output_dram_bytes=m * n, mandatory_dram_bytes=k * n + m * k + m * n,
        weight_buffer_read_bytes=k * n, weight_buffer_write_bytes=k * n,
        # every row of X streams through each column tile
        input_buffer_read_bytes=m * k * tiles_n, input_buffer_write_bytes=m * k,
        # a partial sum per k tile; the first k tile of a column tile only writes; final read
        output_buffer_write_bytes=ACC_BYTES * m * n * tiles_k,
        output_buffer_read_bytes=ACC_BYTES * m * n * (tiles_k - 1) + m * n,
        folds=tiles_k * tiles_n, tiles_total=tiles_k * tiles_n, tiles_skipped=0)


@pytest.mark.parametrize("m,k,n,r,c", [(128, 768, 768, 32, 32), (70, 50, 90, 16, 8)])
def test_dense_os_counts_equal_closed_forms(m, k, n, r, c):
    counts = gemm_schedule(GemmOp("g", m, k, n), _acc(r, c, "os")).counts
    tiles_m, tiles_n = math.ceil(m / r), math.ceil(n / c)
    assert counts == ActionCounts(
        executed_macs=m * k * n, useful_macs=m * k * n, dense_macs=m * k * n,
        weight_dram_bytes=k * n, index_dram_bytes=0, input_dram_bytes=m * k,
        output_dram_bytes=m * n, mandatory_dram_bytes=k * n + m * k + m * n,
        weight_buffer_read_bytes=k * n * tiles_m, weight_buffer_write_bytes=k * n,
        input_buffer_read_bytes=m * k * tiles_n, input_buffer_write_bytes=m * k,
        output_buffer_write_bytes=m * n, output_buffer_read_bytes=m * n,
        folds=tiles_m * tiles_n, tiles_total=math.ceil(k / r) * tiles_n * tiles_m,
        tiles_skipped=0)


def test_vector_op_counts_equal_closed_forms():
    e = 128 * 768
    counts = vector_schedule(VectorOp("ln", "layernorm", e), _acc(32, 32, "ws")).counts
    assert counts.vector_element_passes == 3 * e and counts.executed_macs == 0
    assert (counts.input_dram_bytes, counts.output_dram_bytes) == (e, e)
    assert counts.input_buffer_read_bytes == 3 * e and counts.input_buffer_write_bytes == e
    assert counts.weight_dram_bytes == counts.weight_buffer_read_bytes == 0
    assert counts.dram_bytes == 2 * e


def test_counts_add_and_scale_field_by_field():
    a = gemm_schedule(GemmOp("g", 20, 30, 40), _acc(8, 8, "ws")).counts
    b = vector_schedule(VectorOp("s", "softmax", 999), _acc(8, 8, "ws")).counts
    both = a + b
    assert both.executed_macs == a.executed_macs
    assert both.input_dram_bytes == a.input_dram_bytes + b.input_dram_bytes
    assert both.vector_element_passes == b.vector_element_passes
    assert a * 3 == a + a + a == 3 * a
    assert a + ActionCounts() == a
    assert (a * 3).buffer_accesses()["weight_read"] == 3 * a.weight_buffer_read_bytes


def test_price_is_counts_times_table_entries():
    acc = board()
    t = acc.energy
    counts = ActionCounts(executed_macs=1000, vector_element_passes=70, weight_dram_bytes=11,
                          index_dram_bytes=3, input_dram_bytes=5, output_dram_bytes=7,
                          weight_buffer_read_bytes=13, weight_buffer_write_bytes=17,
                          input_buffer_read_bytes=19, input_buffer_write_bytes=23,
                          output_buffer_read_bytes=29, output_buffer_write_bytes=31)
    pj = price(counts, t)
    assert tuple(pj) == COMPONENTS and pj["static"] == 0
    assert pj["mac"] == 1000 * t.mac_pj
    assert pj["vector"] == 70 * t.vector_pj
    assert pj["dram"] == pytest.approx((11 + 3 + 5 + 7) * t.dram_pj_per_byte)
    rd, wr = t.buffer_read_pj_per_byte, t.buffer_write_pj_per_byte
    assert pj["weight_buffer"] == pytest.approx(13 * rd + 17 * wr)
    assert pj["input_buffer"] == pytest.approx(19 * rd + 23 * wr)
    assert pj["output_buffer"] == pytest.approx(29 * rd + 31 * wr)
    four = price(counts, t, instances=4, latency_us=2.5)
    assert four["mac"] == 4 * pj["mac"]
    assert four["static"] == pytest.approx(t.static_mw * 2.5 * 1e3)  # mW x us = nJ


def test_simulate_prices_the_schedules_counts():
    acc = board(sparse_strategy="compact")
    mask = hwmodels.BlockMask.random((16, 8), (96, 80), 0.4, seed=3)
    rep = hwmodels.simulate(hwmodels.gemm_workload(64, 80, 96), acc, {"gemm.weight": mask})
    sched = gemm_schedule(GemmOp("gemm", 64, 80, 96), acc, hwmodels.sparsity.gemm_blocks(mask))
    op = rep.ops[0]
    assert op.energy_pj == price(sched.counts, acc.energy,
                                 latency_us=op.total_cycles / acc.clock_mhz)
    assert op.dram_bytes == sched.counts.dram_bytes
    assert op.buffer_accesses == sched.counts.buffer_accesses()
