"""Passes over W built for many masks at once (folds.pass_structures over a GridStack) equal
those built for each mask alone, field by field and dtype by dtype; and the per-op rows that
simulate copies for ops sharing a schedule equal freshly built ones."""
import dataclasses

import numpy as np
import pytest

import hwmodels
from hwmodels import sweepcache
from hwmodels.folds import pass_structure, pass_structures
from hwmodels.sparsity import gemm_blocks


def _acc(rows, cols, df, strategy, fmt="block", precision="int8"):
    return hwmodels.load_board("zcu102", {
        "pe_array": {"rows": rows, "cols": cols, "precision": precision}, "dataflow": df,
        "sparse_strategy": strategy, "index_format": fmt}, check_fit=False)


def _masks():
    out = []
    for seed in range(4):  # one shape class of four, plus odd shapes and an empty mask
        out.append(hwmodels.BlockMask.random((16, 16), (96, 80), 0.5, seed=seed))
    out.append(hwmodels.BlockMask.random((7, 5), (50, 38), 0.3, seed=1))
    out.append(hwmodels.BlockMask.random((7, 5), (50, 38), 0.6, seed=2))
    out.append(hwmodels.BlockMask.random((16, 16), (96, 80), 0.0, seed=3))
    out.append(hwmodels.BlockMask.n_of_m(2, 4, (40, 64), seed=5))
    g = hwmodels.BlockMask.random((8, 8), (64, 64), 0.7, seed=6).grid.copy()
    g[:, 2] = False  # a whole column tile skipped: store-only entries
    out.append(hwmodels.BlockMask(g, (8, 8), (64, 64)))
    return [gemm_blocks(m) for m in out]


def _same(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert type(x) is type(y) and x == y, f.name


@pytest.mark.parametrize("df", ["ws", "os"])
@pytest.mark.parametrize("strategy", ["tile-skip", "compact"])
@pytest.mark.parametrize("arr,fmt,prec", [((8, 16), "block", "int8"), ((12, 24), "bitmap", "w4a8"),
                                          ((16, 6), "nm", "int8"), ((4, 32), "block", "w4a8")])
def test_stacked_passes_equal_passes_built_alone(df, strategy, arr, fmt, prec):
    acc = _acc(*arr, df, strategy, fmt, prec)
    gbs = _masks()
    wbs = [acc.w_operand_bytes("weight")] * len(gbs)
    with sweepcache.enabled(False):
        together = pass_structures(gbs, strategy, acc, df, wbs)
        for gb, wb, t in zip(gbs, wbs, together):
            _same(t, pass_structure(gb, strategy, acc, df, wb))


def test_copied_rows_equal_rows_built_for_each_op():
    """Identical unmasked ops share one row computation in simulate: every copy must carry its
    own name, layer and role and the same figures as the op simulated alone."""
    wl = hwmodels.bert_encoder({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
                                "num_attention_heads": 2, "intermediate_size": 128}, 16)
    acc = _acc(8, 8, "ws", "compact")
    rep = hwmodels.simulate(wl, acc)
    assert len({o.name for o in rep.ops}) == len(rep.ops)
    by_layer = [[o for o in rep.ops if o.layer == k] for k in (0, 1)]
    for a, b in zip(*by_layer):  # identical layers: only name, layer, weight name differ
        assert a.name != b.name and (a.layer, b.layer) == (0, 1)
        assert (a.weight_name is None) == (b.weight_name is None) and a.role == b.role
        assert a.weight_name is None or a.weight_name != b.weight_name
        assert dataclasses.replace(a, name=b.name, layer=1, weight_name=b.weight_name) == b
