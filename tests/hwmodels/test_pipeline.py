"""The pipeline options: `weight_preload` (serial | overlapped) and `vector_overlap` (none | fused).

Closed forms (hwmodels.pipeline.pipeline_fill, hwmodels.engines.fusion): overlapped preload takes
the per-fold preload and skew off the critical path exactly; serial stays SCALE-Sim's count; fused
vector work never makes a group shorter than its GEMM alone and never longer than unfused.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import hwmodels
from hwmodels import BlockMask, GemmOp, simulate
from hwmodels.engines.fusion import exposed_cycles, fused_timings, granule_work
from hwmodels.mapping import gemm_schedule
from hwmodels.pipeline import ideal_compute_cycles
from hwmodels.workload import BUILTIN_CONFIGS

from hw_helpers import board

BIG = 1 << 30
IDEAL = {"buffers": {b: {"capacity_bytes": BIG} for b in ("weight", "input", "output")},
         "dram": {"bandwidth_gb_s": 1e6}}

# (M, K, N, R, C): M >= R, M < R (the preload shows), edge folds, one fold
SMALL = [(16, 32, 48, 8, 8), (5, 100, 3, 4, 8), (7, 9, 5, 4, 4), (20, 37, 45, 8, 8),
         (3, 64, 64, 16, 16), (64, 8, 8, 8, 8), (33, 64, 31, 16, 8)]


def _acc(df, preload, r, c, **kw):
    return board(dataflow=df, weight_preload=preload, pe_array={"rows": r, "cols": c}, **IDEAL,
                 **kw)


def test_presets_default_to_the_overlapped_pipeline_and_code_to_scalesim():
    for name in hwmodels.list_boards():
        acc = hwmodels.load_board(name)
        assert (acc.weight_preload, acc.vector_overlap) == ("overlapped", "fused")
    # a YAML that omits both keys gets the code defaults, SCALE-Sim's counting
    data = {k: v for k, v in hwmodels.load_board("zcu102").to_dict().items()
            if k not in ("weight_preload", "vector_overlap", "source")}
    plain = hwmodels.accelerator_from_dict(data)
    assert (plain.weight_preload, plain.vector_overlap) == ("serial", "none")


def test_an_unknown_mode_is_a_one_line_error():
    with pytest.raises(ValueError, match="weight_preload"):
        board(weight_preload="double")
    with pytest.raises(ValueError, match="vector_overlap"):
        board(vector_overlap="yes")


@pytest.mark.parametrize("m,k,n,r,c", SMALL)
def test_ws_overlapped_closed_form(m, k, n, r, c):
    """T = R + (n-1) max(M, R) + M + R + C - 2: one preload, then folds max(M, R) apart, the
    skew and drain once."""
    folds = math.ceil(k / r) * math.ceil(n / c)
    gold = r + (folds - 1) * max(m, r) + m + r + c - 2
    s = gemm_schedule(GemmOp("g", m, k, n), _acc("ws", "overlapped", r, c))
    assert int(s.busy.sum()) == gold == ideal_compute_cycles(m, k, n, r, c, "ws", "overlapped")
    serial = gemm_schedule(GemmOp("g", m, k, n), _acc("ws", "serial", r, c))
    assert int(serial.busy.sum()) == folds * (2 * r + c + m - 2)  # SCALE-Sim's count
    if m >= r:  # the per-fold preload and skew/drain leave the critical path exactly
        assert int(serial.busy.sum() - s.busy.sum()) == (folds - 1) * (2 * r + c - 2)
    rep = simulate(hwmodels.gemm_workload(m, k, n), _acc("ws", "overlapped", r, c))
    assert rep.total_cycles == pytest.approx(gold, abs=1.0)  # ideal memory: < 1 stall cycle


@pytest.mark.parametrize("m,k,n,r,c", SMALL)
def test_os_overlapped_closed_form(m, k, n, r, c):
    """T = (n-1) max(K, R) + K + R + C - 2 (double-buffered accumulators, no preload)."""
    folds = math.ceil(m / r) * math.ceil(n / c)
    gold = (folds - 1) * max(k, r) + k + r + c - 2
    s = gemm_schedule(GemmOp("g", m, k, n), _acc("os", "overlapped", r, c))
    assert int(s.busy.sum()) == gold == ideal_compute_cycles(m, k, n, r, c, "os", "overlapped")
    serial = gemm_schedule(GemmOp("g", m, k, n), _acc("os", "serial", r, c))
    assert int(serial.busy.sum()) == folds * (k + r + c - 2)


@pytest.mark.parametrize("df", ["ws", "os"])
@pytest.mark.parametrize("strategy,block", [("dense", None), ("tile-skip", (16, 16)),
                                            ("compact", (32, 1)), ("compact", (1, 16))])
def test_preload_mode_changes_cycles_only(df, strategy, block):
    """Same folds, compute and bytes in both modes; overlapped never takes longer."""
    m, k, n = 128, 256, 384
    op = GemmOp("g", m, k, n)
    gb = None
    if block:
        from hwmodels.sparsity import gemm_blocks
        gb = gemm_blocks(BlockMask.random(block, (n, k), 0.5, seed=3))
    ser = gemm_schedule(op, board(dataflow=df, sparse_strategy=strategy,
                                  weight_preload="serial"), gb)
    ovl = gemm_schedule(op, board(dataflow=df, sparse_strategy=strategy,
                                  weight_preload="overlapped"), gb)
    assert ser.counts == ovl.counts
    for name in ("stream", "index", "weight_load", "input_load", "store_bytes"):
        assert np.array_equal(getattr(ser, name), getattr(ovl, name)), name
    assert ovl.fill.sum() < ser.fill.sum()
    R, C = 32, 32
    real = (ser.stream + ser.fill) > 0
    # every real fold after the first hides its preload behind the previous fold's stream
    assert ovl.fill.sum() == (R if df == "ws" else 0) + R + C - 2 + int(
        np.maximum(0, R - ser.stream[real][:-1]).sum())


# --------------------------------------------------------------------------- fused vector work
def test_exposed_cycles_equal_granules_closed_form():
    """G equal granules released at T_P g/G, work V/G each: shown = max(V/G, V - T_P (1-1/G))."""
    for tp, v, g in [(1000.0, 300.0, 4), (1000.0, 3000.0, 4), (500.0, 500.0, 1), (90, 10, 9)]:
        release = tp * np.arange(1, g + 1) / g
        work = np.full(g, v / g)
        assert exposed_cycles(release, work) == pytest.approx(max(v / g, v - tp * (1 - 1 / g)))


def test_row_wise_last_pass_waits_for_complete_rows():
    """ws with one M chunk: rows complete only at the last fold, so 1/passes of a softmax's
    work is released there; element-wise work follows the output tiles."""
    s = gemm_schedule(GemmOp("g", 128, 64, 128), board(weight_preload="overlapped"))
    store = s.store_bytes / s.store_bytes.sum()
    gelu = granule_work(s, "gelu", 1, 900.0)
    assert np.allclose(gelu, 900.0 * store)
    soft = granule_work(s, "softmax", 3, 900.0)
    assert soft.sum() == pytest.approx(900.0)
    assert soft[-1] == pytest.approx(600.0 * store[-1] + 300.0)


def _layer(acc, masks=None, engine="analytical"):
    cfg = dict(BUILTIN_CONFIGS["bert-base"], num_hidden_layers=1)
    wl = hwmodels.bert_encoder(cfg, 128)
    return wl, simulate(wl, acc, masks, engine=engine)


def _groups(ops):
    """(gemm index, vector indices) of every fusion group."""
    out, cur = [], None
    for i, op in enumerate(ops):
        if op.kind == "gemm":
            cur = (i, [])
            out.append(cur)
        elif cur is not None:
            cur[1].append(i)
    return [g for g in out if g[1]]


@pytest.mark.parametrize("engine", ["analytical", "event"])
@pytest.mark.parametrize("df,array", [("ws", 32), ("os", 32), ("ws", 16), ("os", 64)])
def test_fused_never_below_the_gemm_alone_nor_above_unfused(df, array, engine):
    over = dict(dataflow=df, pe_array={"rows": array, "cols": array}, weight_preload="overlapped")
    _, none = _layer(board(vector_overlap="none", **over), engine=engine)
    _, fused = _layer(board(vector_overlap="fused", **over), engine=engine)
    assert fused.total_cycles < none.total_cycles
    for gi, vis in _groups(fused.ops):
        gemm = fused.ops[gi]
        assert gemm.total_cycles == none.ops[gi].total_cycles  # the GEMM itself is untouched
        shown = sum(fused.ops[i].total_cycles for i in vis)
        alone = sum(none.ops[i].total_cycles for i in vis)
        assert 0 < shown <= alone + 1e-9  # a tail always shows; never worse than unfused
        # a vector group longer than its producer shows at least the difference
        assert shown >= alone - gemm.total_cycles - 1e-9
        for i in vis:  # the split stays consistent
            o = fused.ops[i]
            assert o.vector_cycles + o.stall_cycles == pytest.approx(o.total_cycles)
            assert 0 <= o.vector_cycles <= none.ops[i].vector_cycles


def test_fused_keeps_bytes_and_dynamic_energy():
    acc_n = board(vector_overlap="none")
    acc_f = board(vector_overlap="fused")
    _, a = _layer(acc_n)
    _, b = _layer(acc_f)
    assert a.dram_bytes == b.dram_bytes and a.executed_macs == b.executed_macs
    dyn = lambda r: sum(v for k, v in r.energy_pj.items() if k != "static")  # noqa: E731
    assert dyn(a) == pytest.approx(dyn(b))


def test_fused_timings_leaves_a_leading_vector_op_alone():
    ops = [hwmodels.VectorOp("v", "gelu", 1000)]
    from hwmodels.engines.timing import Timing
    t = Timing(70.0, 0.0, 0.0, 0.0, 63.0, 7.0)
    assert fused_timings(ops, [None], [t]) == [t]


def test_serial_none_is_scalesim_counting_for_a_whole_layer():
    """The code defaults (serial, none) equal the presets with both keys pinned to them."""
    wl, a = _layer(board(weight_preload="serial", vector_overlap="none"))
    data = hwmodels.load_board("zcu102").to_dict()
    for key in ("weight_preload", "vector_overlap", "source"):
        data.pop(key)
    b = simulate(wl, hwmodels.accelerator_from_dict(data))
    assert a.total_cycles == b.total_cycles and a.fill_drain_cycles == b.fill_drain_cycles


def test_cli_options_reach_the_model():
    import json

    from click.testing import CliRunner

    from codesign.cli import main

    def run(*extra):
        res = CliRunner().invoke(main, ["simulate-gemm", "--m", "128", "--k", "768", "--n", "768",
                                        "--array", "32x32", "--dataflow", "ws", "--json", *extra])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    ser = run("--weight-preload", "serial", "--vector-overlap", "none")
    ovl = run("--weight-preload", "overlapped")
    assert (ser["weight_preload"], ser["vector_overlap"]) == ("serial", "none")
    assert ser["compute_cycles"] + ser["fill_drain_cycles"] == 127_872  # SCALE-Sim + 1
    assert ovl["compute_cycles"] + ovl["fill_drain_cycles"] == 73_822 == ideal_compute_cycles(
        128, 768, 768, 32, 32, "ws", "overlapped")  # 32 + 575 x 128 + 128 + 62
    assert ovl["dram_bytes"] == ser["dram_bytes"]
    bad = CliRunner().invoke(main, ["simulate-gemm", "--weight-preload", "double"])
    assert bad.exit_code != 0 and "--weight-preload" in bad.output
