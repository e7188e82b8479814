"""Latency-aware allocation (codesign.pruning.allocation) on the simulator: targets met (the
written masks re-simulated), the importance order kept inside every unit class, whole tiles
emptied under tile-skip, and uniform pruning reproduced when every matrix costs the same."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hwmodels
from hwmodels.costs import build_costs, unit_members
from codesign.masks import load_masks, save_masks
from codesign.pruning.allocation import allocate
from codesign.pruning.uniform import uniform_for_target, uniform_masks


def _importance(table, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.random(hwmodels.BlockMask.dense(table.block_shape, m.matrix_shape).grid.shape)
            for n, m in table.matrices.items()}


@pytest.fixture(scope="module")
def minilm():
    return hwmodels.builtin_workload("minilm-l6", 128)


@pytest.mark.parametrize("overrides,block,speedup", [
    ({}, "16x16", 2.0), ({}, "1x16", 1.5), ({"sparse_strategy": "compact"}, "16x16", 2.0),
    ({"dataflow": "os"}, "1x16", 2.0)])
def test_meets_the_target_on_the_simulator(minilm, tmp_path, overrides, block, speedup):
    acc = hwmodels.load_board("zcu102", overrides)
    table = build_costs(minilm, acc, block)
    a = allocate(table, _importance(table), speedup=speedup)
    path = save_masks(tmp_path / "m.safetensors", a.masks, {"method": "calibrated"})
    report = hwmodels.simulate(minilm, acc, dict(load_masks(path).masks))
    dense = hwmodels.simulate(minilm, acc)
    assert report.latency_ms == a.latency_ms <= dense.latency_ms / speedup
    assert a.dense_ms == dense.latency_ms
    b = allocate(table, _importance(table), latency_ms=a.latency_ms * 1.05)
    assert hwmodels.simulate(minilm, acc, b.masks).latency_ms <= a.latency_ms * 1.05
    assert b.removed_importance <= a.removed_importance  # an easier target costs no more


def _tile_sums(table, name, mask, imp):
    """Per tile: (all blocks removed?, all kept?, summed importance)."""
    kept = mask.grid.ravel()
    out = []
    for members in unit_members(table.matrices[name], table.block_shape):
        out.append((not kept[members].any(), kept[members].all(), imp.ravel()[members].sum()))
    return out


@pytest.mark.parametrize("block", ["16x16", "1x16"])
def test_tile_skip_empties_whole_tiles_least_important_first(minilm, block):
    table = build_costs(minilm, hwmodels.load_board("zcu102"), block)
    imp = _importance(table, 1)
    a = allocate(table, imp, speedup=2.0)
    for name, mask in a.masks.items():
        tiles = _tile_sums(table, name, mask, imp[name])
        assert all(empty or full for empty, full, _ in tiles), name  # no partial tile
        removed = [s for empty, _, s in tiles if empty]
        kept = [s for empty, _, s in tiles if not empty]
        # 16 and 1 divide 32 and 384: every tile of a matrix has the same size (one class)
        if removed and kept:
            assert max(removed) <= min(kept), name


def test_block_level_order_when_a_tile_is_a_block(minilm):
    acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16}})
    table = build_costs(minilm, acc, "16x16")  # ws tile 16x16 = one 16x16 block
    imp = _importance(table, 2)
    a = allocate(table, imp, speedup=1.8)
    for name, mask in a.masks.items():
        g, v = mask.grid, imp[name]
        if (~g).any() and g.any():
            assert v[~g].max() <= v[g].min(), name  # never a more important block removed


def test_compaction_keeps_the_order_inside_each_block_row(minilm):
    table = build_costs(minilm, hwmodels.load_board("zcu102", {"sparse_strategy": "compact"}),
                        "16x16")
    imp = _importance(table, 3)
    a = allocate(table, imp, speedup=2.0)
    for name, mask in a.masks.items():
        for row, v in zip(mask.grid, imp[name]):
            if (~row).any() and row.any():  # the same cost: one block of one block row
                assert v[~row].max() <= v[row].min(), name


def test_uniform_reproduced_when_every_matrix_costs_the_same():
    """Sanity property: four identical matrices, one block per tile (so every block costs the
    same, exactly), importance a permutation of the same values in every matrix. At the latency
    of uniform pruning at ratio r the greedy prefix removes exactly round(r * blocks) blocks per
    matrix, the least important ones: uniform pruning's very masks."""
    ops = tuple(hwmodels.GemmOp(name=f"w{i}", m=128, k=64, n=64, weight_name=f"w{i}.weight")
                for i in range(4))
    wl = hwmodels.Workload(name="four", ops=ops)
    acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16}})
    table = build_costs(wl, acc, "16x16")
    assert len({m.unit_cycles for m in table.matrices.values()}) == 1
    rng = np.random.default_rng(4)
    values = rng.permutation(16) + 1.0
    imp = {n: rng.permutation(values).reshape(4, 4) for n in table.matrices}
    for ratio in (0.25, 0.5, 0.75):
        uni = uniform_masks(table, imp, ratio)
        a = allocate(table, imp, latency_ms=table.latency_ms(uni), refine=False)
        assert a.masks == uni, ratio
        r = allocate(table, imp, latency_ms=table.latency_ms(uni))
        assert r.removed_importance <= a.removed_importance


def test_uniform_for_target_and_errors(minilm):
    table = build_costs(minilm, hwmodels.load_board("zcu102"), "16x16")
    imp = _importance(table)
    ratio, masks, ms = uniform_for_target(table, imp, speedup=1.5)
    assert ms <= table.latency_ms({}) / 1.5 and 0 < ratio < 1
    assert table.latency_ms(uniform_masks(table, imp, ratio - 2e-3)) > table.latency_ms({}) / 1.5
    carry, carry_masks, carry_ms = uniform_for_target(table, imp, speedup=1.5, structure="carry")
    assert carry <= ratio and carry_ms <= table.latency_ms({}) / 1.5
    assert carry_ms == hwmodels.simulate(minilm, table.accelerator, carry_masks).latency_ms
    with pytest.raises(ValueError, match="exactly one target"):
        allocate(table, imp, speedup=2, latency_ms=1)
    with pytest.raises(ValueError, match="out of reach"):
        allocate(table, imp, latency_ms=0.01)
    with pytest.raises(ValueError, match="no grid for"):
        allocate(table, {}, speedup=2)


def test_min_density_floor_holds_and_the_target_is_met(minilm):
    table = build_costs(minilm, hwmodels.load_board("zcu102"), "16x16")
    imp = _importance(table, seed=3)
    cheap = [n for n, m in table.matrices.items() if m.matrix_shape[0] > m.matrix_shape[1]]
    imp.update({n: imp[n] * 1e-3 for n in cheap})  # the FFN up-projections: nearly free
    free = allocate(table, imp, speedup=1.5)
    floored = allocate(table, imp, speedup=1.5, min_density=0.3)
    assert min(m.grid.mean() for m in free.masks.values()) < 0.3  # the floor binds here
    for m in floored.masks.values():
        assert m.grid.sum() >= math.ceil(0.3 * m.grid.size)
    assert floored.removed_importance > free.removed_importance
    assert floored.latency_ms <= table.latency_ms({}) / 1.5
    assert floored.latency_ms == hwmodels.simulate(minilm, table.accelerator,
                                                   floored.masks).latency_ms
    with pytest.raises(ValueError, match="min_density"):
        allocate(table, imp, speedup=2, min_density=1.0)
