"""Shortcuts of the cold path equal what they replace: the storing folds the ws mapping sets
from the fold structure equal `store_bytes.nonzero()`; pipeline_fill's every-entry-a-fold path
equals its indexed form; the tile lengths of the analytical engine equal np.diff."""
import numpy as np
import pytest

import hwmodels
from hwmodels import sweepcache
from hwmodels.engines import analytical
from hwmodels.mapping import gemm_schedule
from hwmodels.pipeline import pipeline_fill
from hwmodels.sparsity import gemm_blocks
from hwmodels.workload import GemmOp


def _acc(rows, cols, strategy, out_kib=256, preload="overlapped"):
    return hwmodels.load_board("zcu102", {
        "pe_array": {"rows": rows, "cols": cols}, "dataflow": "ws", "sparse_strategy": strategy,
        "weight_preload": preload,
        "buffers": {"output": {"capacity_bytes": out_kib << 10}}}, check_fit=False)


def _masks():
    g = hwmodels.BlockMask.random((8, 8), (64, 96), 0.7, seed=6).grid.copy()
    g[2, :] = False  # a whole column tile of W skipped: a store-only entry
    return [hwmodels.BlockMask.random((16, 16), (96, 80), 0.5, seed=1),
            hwmodels.BlockMask.random((7, 5), (50, 38), 0.3, seed=2),
            hwmodels.BlockMask.random((16, 16), (96, 80), 0.0, seed=3),
            hwmodels.BlockMask(g, (8, 8), (64, 96)), None]


@pytest.mark.parametrize("strategy", ["dense", "tile-skip", "compact"])
@pytest.mark.parametrize("rows,cols", [(8, 8), (16, 8), (8, 32)])
@pytest.mark.parametrize("out_kib", [256, 1])  # one M chunk, and several
def test_ws_store_folds_equal_nonzero_stores(strategy, rows, cols, out_kib):
    acc = _acc(rows, cols, strategy, out_kib)
    with sweepcache.enabled(False):
        for mask in _masks():
            k, n = (mask.matrix_shape[1], mask.matrix_shape[0]) if mask else (40, 24)
            op = GemmOp(name="g", m=77, k=k, n=n, weight_name="w")
            s = gemm_schedule(op, acc, gemm_blocks(mask) if mask else None)
            assert "store_folds" in s.__dict__  # set by the mapping
            expect = s.store_bytes.nonzero()[0]
            assert s.store_folds.dtype == expect.dtype
            assert np.array_equal(s.store_folds, expect)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_pipeline_fill_all_folds_equals_indexed(dataflow):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        stream = rng.integers(1, 40, n)
        real = np.ones(n, bool)
        fast = pipeline_fill(stream, real, 16, 8, dataflow, "overlapped")
        idx = np.arange(n)  # the indexed form, spelled out
        fill = np.zeros(n, np.int64)
        fill[idx[1:]] = np.maximum(0, 16 - stream[idx[:-1]])
        fill[idx[0]] += 16 if dataflow == "ws" else 0
        fill[idx[-1]] += 16 + 8 - 2
        assert fast.dtype == fill.dtype and np.array_equal(fast, fill)


def test_makespan_equals_np_diff_form():
    """_overlapped with its tile lengths taken by subtraction equals the formula with np.diff
    (an independent spelling of the module docstring's closed forms)."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        busy = rng.integers(0, 50, n).astype(np.float64)
        load = rng.random(n) * 30
        store = np.where(rng.random(n) < 0.3, rng.random(n) * 40, 0.0)
        store[-1] = 5.0
        st = store.nonzero()[0]
        length = np.diff(st, prepend=-1)
        chunk = store[st] / length
        begin, end = st + 1, np.minimum(st + 1 + length, n)
        inside = np.maximum(end - begin, 0)
        diff = np.bincount(np.minimum(begin, n), weights=chunk, minlength=n + 1)
        diff -= np.bincount(end, weights=chunk, minlength=n + 1)
        tail = float((store[st] - chunk * inside).sum())
        dma = load + np.cumsum(diff)[:n]
        lower = float(np.max(np.cumsum(dma) + np.cumsum(busy[::-1])[::-1]) + tail)
        upper = float(dma[0] + np.maximum(busy[:-1], dma[1:]).sum() + busy[-1] + tail)
        assert analytical.makespan(busy, load, store, True) == 0.5 * (lower + upper)
