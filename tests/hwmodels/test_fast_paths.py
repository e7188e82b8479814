"""The cold-point shortcuts of the analytical path equal the straightforward computations,
bit for bit: fused vector work timed at the storing folds only (engines.fusion), the integer
running sum of a schedule's busy cycles, the ws fill/drain without its per-fold maximum, the
work sums, busy counts and storing folds that the ws mapping sets up front, WsFolds.jj derived
from its column tiles' last entries, and hwmodels.frozen's constructor."""
import dataclasses

import numpy as np
import pytest

import hwmodels
from hwmodels import frozen, mapping, sweepcache
from hwmodels.engines import analytical, fusion
from hwmodels.engines.timing import Timing
from hwmodels.pipeline import pipeline_fill
from hwmodels.sparsity import gemm_blocks
from hwmodels.workload import GemmOp, VectorOp


def _acc(rows, cols, df, strategy, **over):
    return hwmodels.load_board("zcu102", {
        "pe_array": {"rows": rows, "cols": cols}, "dataflow": df, "sparse_strategy": strategy,
        **over}, check_fit=False)


def _mask(k, n, density, seed, block=(16, 16)):
    return gemm_blocks(hwmodels.BlockMask.random(block, (n, k), density, seed=seed))


def _bits(x):
    return np.asarray(x, np.float64).view(np.int64).tolist()


CASES = [  # (rows, cols, dataflow, strategy, M, K, N, density, extra overrides)
    (16, 16, "ws", "tile-skip", 128, 192, 256, 0.5, {}),
    (16, 16, "ws", "compact", 128, 192, 256, 0.5, {}),
    (8, 32, "ws", "tile-skip", 40, 96, 160, 0.3, {"weight_preload": "serial"}),
    (32, 8, "ws", "compact", 20, 128, 64, 0.6, {}),  # M < R: folds wait for the preload
    (16, 16, "ws", "tile-skip", 96, 128, 128, 0.5,  # M split into chunks
     {"buffers": {"output": {"capacity_bytes": 2048}}}),
    (16, 16, "ws", "tile-skip", 64, 128, 128, 0.0, {}),  # every tile skipped: store-only
    (16, 16, "os", "compact", 64, 128, 128, 0.5, {}),
]


def _schedule(case):
    rows, cols, df, strategy, m, k, n, density, over = case
    acc = _acc(rows, cols, df, strategy, **over)
    op = GemmOp(name="g", m=m, k=k, n=n, weight_name="g.weight")
    with sweepcache.enabled(False):
        return acc, mapping.gemm_schedule(op, acc, _mask(k, n, density, seed=rows + m))


def _plain(s: mapping.Schedule) -> mapping.Schedule:
    """The same schedule built by the dataclass constructor, nothing derived up front."""
    return mapping.Schedule(**{f.name: getattr(s, f.name) for f in dataclasses.fields(s)})


@pytest.mark.parametrize("case", CASES)
def test_schedule_shortcuts_equal_straightforward_forms(case):
    acc, s = _schedule(case)
    p = _plain(s)
    busy = (s.stream + s.fill + s.index).astype(np.float64)
    assert np.array_equal(s.busy_counts, s.stream + s.fill + s.index)
    assert _bits(s.busy_cycles) == _bits(busy)
    assert _bits(s.busy_cumsum) == _bits(busy.cumsum()) == _bits(p.busy_cumsum)
    sums = (float(busy.sum()), float(s.stream.sum()), float(s.fill.sum()), float(s.index.sum()))
    assert s.work_sums == p.work_sums == sums
    assert np.array_equal(s.store_folds, np.flatnonzero(s.store_bytes))
    for db in (True, False):
        t, tp = (analytical.time_schedule(x, 1.7, db) for x in (s, p))
        assert dataclasses.astuple(t) == dataclasses.astuple(tp)


@pytest.mark.parametrize("case", CASES)
def test_ws_fill_without_the_maximum_equals_the_per_fold_form(case):
    rows, cols, df, *_ = case
    _, s = _schedule(case)
    real = s.stream > 0
    ms = int(s.stream[real].min()) if real.any() else 0
    for preload in ("serial", "overlapped"):
        full = pipeline_fill(s.stream, real, rows, cols, df, preload)
        fast = pipeline_fill(s.stream, real, rows, cols, df, preload, min_stream=ms)
        assert fast.dtype == full.dtype and np.array_equal(fast, full)


def _full_fuse(producer, timing, vectors, timings):
    """fuse_group over every fold (the form before release_points)."""
    release = fusion.fold_ends(producer, timing)
    work = sum(fusion.granule_work(producer, op.kind, op.passes, t.total_cycles)
               for op, t in zip(vectors, timings))
    shown = fusion.exposed_cycles(release, np.asarray(work, np.float64))
    alone = sum(t.total_cycles for t in timings)
    return [t.exposed(shown * t.total_cycles / alone) for t in timings]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("vec_cycles", [(3.0, 7.5), (4000.0, 1e5), (0.25, 123456.7)])
def test_fusion_at_release_points_equals_every_fold(case, vec_cycles):
    acc, s = _schedule(case)
    t = analytical.time_schedule(s, 0.9, True)
    vectors = [VectorOp(name="add", kind="add", elements=4096),
               VectorOp(name="ln", kind="layernorm", elements=4096)]
    timings = [Timing(c, 0.0, 0.0, 0.0, c * 0.8, c * 0.2) for c in vec_cycles]
    got = fusion.fuse_group(s, t, vectors, timings)
    want = _full_fuse(s, t, vectors, timings)
    assert [dataclasses.astuple(x) for x in got] == [dataclasses.astuple(x) for x in want]
    if case[2] == "ws" and s.count == 1 and s.stream.size > 2 * s.store_folds.size:
        assert fusion.release_points(s) is not None  # the shortcut was taken


def test_ws_folds_jj_equals_the_column_tile_of_each_entry():
    from hwmodels.folds import pass_structure
    acc = _acc(8, 16, "ws", "tile-skip")
    g = hwmodels.BlockMask.random((8, 8), (64, 64), 0.7, seed=6).grid.copy()
    g[:, 2] = False  # a skipped column tile: a store-only entry
    for gb in (gemm_blocks(hwmodels.BlockMask(g, (8, 8), (64, 64))), _mask(96, 80, 0.5, 1)):
        with sweepcache.enabled(False):
            f = pass_structure(gb, "tile-skip", acc, "ws", 1)
        count = np.diff(f.tile_last, prepend=-1)
        assert np.array_equal(f.jj, np.repeat(np.arange(f.tile_last.size), count))
        assert f.entries == f.real.size == f.jj.size


def test_frozen_make_equals_the_constructor_and_names_missing_fields():
    from hwmodels.actions import ActionCounts
    kw = {f.name: i for i, f in enumerate(dataclasses.fields(ActionCounts))}
    assert frozen.make(ActionCounts, **kw) == ActionCounts(**kw)
    kw.pop("folds")
    with pytest.raises(TypeError, match="folds"):
        frozen.make(ActionCounts, **kw)


def test_frozen_make_refuses_a_class_with_checks_and_adopt_takes_the_dict():
    from hwmodels.report import OpReport, op_report_of

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self):
            if self.x < 0:
                raise ValueError("x < 0")

    with pytest.raises(TypeError, match="has a __post_init__; call Checked"):
        frozen.make(Checked, x=-1)
    kw = {f.name: i for i, f in enumerate(dataclasses.fields(OpReport))}
    assert op_report_of(dict(kw)) == OpReport(**kw)
