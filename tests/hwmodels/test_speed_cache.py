"""The caches (hwmodels.sweepcache) and the batched path (hwmodels.batch.simulate_points) give
exactly what the plain per-point path gives: equality of floats, not closeness."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import hwmodels
from hwmodels import sweepcache
from hwmodels.batch import simulate_points
from hwmodels.engines.analytical import makespan, makespan_batch

TINY = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 128,
        "num_attention_heads": 4, "intermediate_size": 256}


def _workload_and_masks(kind: str):
    wl = hwmodels.bert_encoder(TINY, 32, name="tiny")
    masks = {}
    for i, op in enumerate(wl.gemms):
        if not op.weight_name:
            continue
        if kind == "nm":
            masks[op.weight_name] = hwmodels.BlockMask.n_of_m(2, 4, (op.n, op.k), seed=i)
        else:
            masks[op.weight_name] = hwmodels.BlockMask.random((16, 8), (op.n, op.k), 0.4, seed=i)
    return wl, masks


def _acc(**kw):
    over = {"pe_array": {"rows": kw["rows"], "cols": kw["cols"]}, "dataflow": kw["df"],
            "sparse_strategy": kw["strategy"], "weight_preload": kw["preload"],
            "vector_overlap": kw["overlap"], "clock_mhz": kw["clock"],
            "double_buffering": kw.get("double", True), "index_format": kw.get("fmt", "block"),
            "dram": {"bandwidth_gb_s": kw["bw"]},
            "buffers": {"weight": {"capacity_bytes": kw["wbuf"]},
                        "input": {"capacity_bytes": kw["xbuf"]},
                        "output": {"capacity_bytes": kw.get("obuf", 64 << 10)}}}
    return hwmodels.load_board("zcu102", over, check_fit=False)


def _plain(wl, acc, masks):
    with sweepcache.enabled(False):
        return hwmodels.simulate(wl, acc, masks)


@pytest.mark.parametrize("df,strategy,preload,overlap", list(itertools.product(
    ("ws", "os"), ("tile-skip", "compact"), ("serial", "overlapped"), ("none", "fused"))))
def test_simulate_points_equals_plain_simulate_exactly(df, strategy, preload, overlap):
    wl, masks = _workload_and_masks("block")
    accs = [_acc(rows=r, cols=c, df=df, strategy=strategy, preload=preload, overlap=overlap,
                 clock=clk, bw=bw, wbuf=wb, xbuf=xb, obuf=ob)
            for (r, c), clk, bw, (wb, xb, ob) in itertools.product(
                ((8, 16), (16, 8)), (150.0, 300.0), (0.5, 19.2),
                ((8 << 10, 4 << 10, 4 << 10), (1 << 20, 1 << 20, 256 << 10)))]
    sweepcache.clear_all()
    batch = simulate_points(wl, accs, masks)
    warm = simulate_points(wl, accs, masks)  # everything from the caches now
    for acc, b, w in zip(accs, batch, warm):
        ref = dataclasses.replace(_plain(wl, acc, masks), ops=())
        assert b == ref and w == ref
        assert b.energy_pj == ref.energy_pj and b.resources == ref.resources


@pytest.mark.parametrize("fmt,double", [("bitmap", True), ("nm", False), ("block", False)])
def test_index_formats_nm_masks_and_single_buffering_exactly(fmt, double):
    wl, masks = _workload_and_masks("nm")
    accs = [_acc(rows=8, cols=8, df=df, strategy="compact", preload="overlapped",
                 overlap="fused", clock=200.0, bw=bw, wbuf=64 << 10, xbuf=32 << 10,
                 fmt=fmt, double=double) for df in ("ws", "os") for bw in (1.0, 10.0)]
    for acc, b in zip(accs, simulate_points(wl, accs, masks)):
        assert b == dataclasses.replace(_plain(wl, acc, masks), ops=())


def test_cached_simulate_equals_uncached_with_every_op_row():
    wl, masks = _workload_and_masks("block")
    acc = _acc(rows=16, cols=16, df="ws", strategy="compact", preload="overlapped",
               overlap="fused", clock=200.0, bw=4.0, wbuf=32 << 10, xbuf=16 << 10)
    sweepcache.clear_all()
    first = hwmodels.simulate(wl, acc, masks)
    again = hwmodels.simulate(wl, acc, masks)
    assert sweepcache.SCHEDULES.hits > 0
    assert first == again == _plain(wl, acc, masks)


def test_cache_keys_are_mask_content_not_identity():
    """Two masks of the same shape and density, different kept blocks: a cache keyed on
    anything but content would return the first one's schedule for the second."""
    wl = hwmodels.gemm_workload(64, 256, 256)
    a = {"gemm.weight": hwmodels.BlockMask.random((16, 16), (256, 256), 0.5, seed=1)}
    b = {"gemm.weight": hwmodels.BlockMask.random((16, 16), (256, 256), 0.5, seed=2)}
    b_same = {"gemm.weight": hwmodels.BlockMask(b["gemm.weight"].grid.copy(), (16, 16),
                                                (256, 256))}
    acc = _acc(rows=32, cols=32, df="os", strategy="tile-skip", preload="serial",
               overlap="none", clock=200.0, bw=4.0, wbuf=1 << 20, xbuf=1 << 20)
    sweepcache.clear_all()
    ra, rb = hwmodels.simulate(wl, acc, a), hwmodels.simulate(wl, acc, b)
    assert ra.total_cycles != rb.total_cycles  # the masks do differ in cost
    assert rb == _plain(wl, acc, b)
    hits = sweepcache.SCHEDULES.hits
    assert hwmodels.simulate(wl, acc, b_same) == rb  # equal content, another object: a hit
    assert sweepcache.SCHEDULES.hits == hits + 1


def test_timing_key_ignores_clock_bandwidth_energy_only():
    base = _acc(rows=8, cols=8, df="ws", strategy="compact", preload="serial", overlap="none",
                clock=200.0, bw=4.0, wbuf=1 << 20, xbuf=1 << 20)
    other = dataclasses.replace(base, clock_mhz=300.0, name="x",
                                dram=dataclasses.replace(base.dram, bandwidth_gb_s=9.0),
                                energy=dataclasses.replace(base.energy, static_mw=1.0))
    assert sweepcache.timing_key(base) == sweepcache.timing_key(other)
    bigger = dataclasses.replace(base, weight_buffer=hwmodels.Buffer(2 << 20))
    assert sweepcache.timing_key(base) != sweepcache.timing_key(bigger)
    assert sweepcache.timing_key(base) != sweepcache.timing_key(
        dataclasses.replace(base, weight_preload="overlapped"))


def test_bounded_cache_evicts_least_recently_used_by_entries_and_bytes():
    c = sweepcache.BoundedCache("t", max_entries=2, max_bytes=10_000)
    c.get("a", lambda: np.zeros(10))
    c.get("b", lambda: np.zeros(10))
    c.get("a", lambda: pytest.fail("a is cached"))
    c.get("c", lambda: np.zeros(10))  # evicts b, the least recently used
    assert len(c) == 2 and c.hits == 1 and c.misses == 3
    built = []
    c.get("b", lambda: built.append(1) or np.zeros(10))
    assert built == [1]
    c.get("big", lambda: np.zeros(2000))  # 16,000 bytes > max_bytes: nothing else survives
    assert len(c) == 0 and c.nbytes == 0
    with sweepcache.enabled(False):
        c.get("x", lambda: np.zeros(1))
    assert len(c) == 0


def test_makespan_batch_equals_scalar_makespan_exactly():
    rng = np.random.default_rng(0)
    # stores at folds 1, 2, 5 make two tiles end their spread at the same fold (4)
    cases = [(np.ones(8), np.zeros(8), np.array([0, 3, 2, 0, 0, 7, 0, 0], float))]
    for n in (1, 7, 300, 3000):
        cases.append((rng.integers(0, 90, n).astype(float),
                      np.where(rng.random(n) < 0.5, rng.random(n) * 900, 0.0),
                      np.where(rng.random(n) < 0.3, rng.random(n) * 900, 0.0)))
    bpc = np.array([0.3, 1.0, 7.7, 64.0])
    for busy, load, store in cases:
        for double in (True, False):
            got = makespan_batch(busy, load, store, bpc, double)
            want = [makespan(busy, load / b, store / b, double) for b in bpc]
            assert got.tolist() == want


def test_schedule_derived_sums_equal_the_repeated_arrays_exactly():
    """Schedule.busy_cycles / busy_cumsum / work_sums / store_folds (what the engines and fused
    vector work share) equal what the engines computed from the repeated arrays before."""
    wl, masks = _workload_and_masks("block")
    acc = _acc(rows=8, cols=16, df="ws", strategy="compact", preload="overlapped",
               overlap="fused", clock=200.0, bw=4.0, wbuf=8 << 10, xbuf=4 << 10, obuf=4 << 10)
    from hwmodels.simulate import op_schedule
    from hwmodels.workload import GemmOp
    for op in wl.ops:
        mask = masks.get(op.weight_name) if isinstance(op, GemmOp) else None
        s = op_schedule(op, acc, mask, None)
        stream, fill, index, store = s.repeated("stream", "fill", "index", "store_bytes")
        busy = (stream + fill + index).astype(np.float64)
        assert np.array_equal(s.busy_cycles, busy)
        assert np.array_equal(s.busy_cumsum, np.cumsum(busy))
        assert np.array_equal(s.busy_cumsum[-1] - s.busy_cumsum + busy,
                              np.cumsum(busy[::-1])[::-1])
        assert s.work_sums == (float(busy.sum()), float(stream.sum()), float(fill.sum()),
                               float(index.sum()))
        assert np.array_equal(s.store_folds, np.flatnonzero(store))


def test_hashed_key_equals_by_value():
    base = _acc(rows=8, cols=8, df="ws", strategy="compact", preload="serial", overlap="none",
                clock=200.0, bw=4.0, wbuf=1 << 20, xbuf=1 << 20)
    a, b = sweepcache.timing_key(base), sweepcache.timing_key(dataclasses.replace(base))
    assert a == b and hash(a) == hash(b) and a is not b
    assert a.value == dataclasses.replace(base, **sweepcache._TIMING_EXCLUDED)
    assert a != sweepcache.timing_key(dataclasses.replace(base, double_buffering=False))
    assert a != a.value  # only equal to another HashedKey


def test_schedule_key_also_ignores_vector_overlap_timing_key_does_not():
    base = _acc(rows=8, cols=8, df="ws", strategy="compact", preload="serial", overlap="none",
                clock=200.0, bw=4.0, wbuf=1 << 20, xbuf=1 << 20)
    fused = dataclasses.replace(base, vector_overlap="fused", clock_mhz=300.0)
    assert sweepcache.schedule_key(base) == sweepcache.schedule_key(fused)
    assert sweepcache.timing_key(base) != sweepcache.timing_key(fused)  # timed apart
    assert sweepcache.schedule_key(base) != sweepcache.schedule_key(
        dataclasses.replace(base, weight_preload="overlapped"))


def test_one_batch_over_both_vector_modes_shares_schedules_and_equals_simulate():
    """Points that differ in vector_overlap (and clock) are timed in their own groups over the
    same schedules: one batch over both modes, both strategies and both preloads equals the
    plain per-point path exactly, and builds each schedule once."""
    wl, masks = _workload_and_masks("block")
    accs = [_acc(rows=8, cols=16, df=df, strategy=strategy, preload=preload, overlap=overlap,
                 clock=clk, bw=4.0, wbuf=16 << 10, xbuf=8 << 10)
            for df, strategy, preload, overlap, clk in itertools.product(
                ("ws", "os"), ("tile-skip", "compact"), ("serial", "overlapped"),
                ("none", "fused"), (150.0, 250.0))]
    sweepcache.clear_all()
    batch = simulate_points(wl, accs, masks)
    built = sweepcache.SCHEDULES.misses
    sweepcache.clear_all()
    simulate_points(wl, [a for a in accs if a.vector_overlap == "none"], masks)
    assert sweepcache.SCHEDULES.misses == built  # the fused points built no schedule of their own
    for acc, b in zip(accs, batch):
        assert b == dataclasses.replace(_plain(wl, acc, masks), ops=())
