"""Structured blocks that carry through (hwmodels.structure): dead V / K heads and dead FFN
neurons, detected from the masks, drop their work from the simulated workload, in closed form on
a small encoder; masks that remove no whole head or neuron give bit-identical reports."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import hwmodels
from hwmodels.simulate import simulate
from hwmodels.sparsity import BlockMask
from hwmodels.structure import Carried, carry_structure, crop_mask
from hwmodels.workload import bert_encoder

sim_module = importlib.import_module("hwmodels.simulate")  # the module (hwmodels.simulate is
# also the name of the function)

# one layer, hidden 64, 4 heads of d = 16, 128 FFN neurons; seq 32, batch 2
CONFIG = {"model_type": "bert", "num_hidden_layers": 1, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128}
SEQ, BATCH = 32, 2
M = SEQ * BATCH
B = (16, 16)


def _name(role):
    return hwmodels.workload.default_weight_name("bert")(0, role)


def _mask(shape, dead_rows=(), dead_cols=(), seed=0, density=1.0):
    """16x16 blocks: random kept blocks at `density`, block rows/cols listed all pruned."""
    grid = BlockMask.random(B, shape, density, seed=seed).grid.copy()
    grid[list(dead_rows), :] = False
    grid[:, list(dead_cols)] = False
    return BlockMask(grid, B, shape)


def _ops(report):
    return {o.name.split(".", 1)[1]: o for o in report.ops}


def _acc(strategy="tile-skip"):
    return hwmodels.load_board("zcu102", {"sparse_strategy": strategy})


def _wl():
    return bert_encoder(CONFIG, SEQ, BATCH)


def test_dead_v_head_drops_its_attention_and_projections():
    report = simulate(_wl(), _acc(), {_name("v"): _mask((64, 64), dead_rows=[1])})
    ops = _ops(report)
    assert report.structure == ({"layer": 0, "heads": 4, "heads_scored": 3, "heads_output": 3,
                                 "neurons": 128, "neurons_kept": 128},)
    assert ops["qk"].count == ops["av"].count == BATCH * 3
    assert ops["softmax"].shape == (BATCH * 3 * SEQ * SEQ,)
    assert [ops[r].shape for r in ("q", "k", "v", "attn_out")] == [(M, 64, 48)] * 3 + [(M, 48, 64)]
    # closed form: every tile of the shrunk ops is kept, so every MAC of them executes
    macs = 3 * M * 64 * 48 + M * 48 * 64 + 2 * BATCH * 3 * SEQ * 16 * SEQ + 2 * M * 64 * 128
    assert report.executed_macs == macs
    # ws: one fold per QK^T instance (K = 16 <= R, N = 32 <= C), M = 32 cycles of stream each
    assert ops["qk"].compute_cycles == BATCH * 3 * SEQ
    full = _ops(simulate(_wl(), _acc()))
    assert full["qk"].compute_cycles == BATCH * 4 * SEQ
    assert ops["qk"].total_cycles == pytest.approx(0.75 * full["qk"].total_cycles, rel=0.02)
    assert "layer   0: heads 3/4 / 3/4, neurons 128/128" in report.table()


def test_dead_k_head_drops_scores_keeps_av():
    report = simulate(_wl(), _acc(), {_name("k"): _mask((64, 64), dead_rows=[2])})
    ops = _ops(report)
    assert report.structure[0]["heads_scored"] == 3 and report.structure[0]["heads_output"] == 4
    assert ops["qk"].count == BATCH * 3 and ops["av"].count == BATCH * 4
    assert ops["q"].shape == ops["k"].shape == (M, 64, 48)
    assert ops["v"].shape == (M, 64, 64) and ops["attn_out"].shape == (M, 64, 64)


def test_dead_q_head_alone_changes_nothing():
    masks = {_name("q"): _mask((64, 64), dead_rows=[0])}
    report = simulate(_wl(), _acc("tile-skip"), masks)
    assert report.structure == ()
    assert [o.shape for o in report.ops] == [o.shape for o in simulate(_wl(), _acc()).ops]


@pytest.mark.parametrize("strategy", ["tile-skip", "compact"])
def test_dead_ffn_neurons_shrink_output_dense(strategy):
    ffn_in = _mask((128, 64), dead_rows=[2, 5], density=0.6, seed=1)  # 32 neurons dead
    ffn_out = _mask((64, 128), density=0.6, seed=2)
    report = simulate(_wl(), _acc(strategy), {_name("ffn_in"): ffn_in,
                                              _name("ffn_out"): ffn_out})
    ops = _ops(report)
    assert report.structure[0]["neurons_kept"] == 96
    assert ops["ffn_in"].shape == (M, 64, 96) and ops["ffn_out"].shape == (M, 96, 64)
    assert ops["gelu"].shape == (M * 96,)
    # output.dense's mask loses exactly block columns 2 and 5 (aligned: 16-row neuron groups)
    cropped = BlockMask(np.delete(ffn_out.grid, [2, 5], axis=1), B, (64, 96))
    alone = simulate(sim_module.gemm_workload(M, 96, 64), _acc(strategy),
                     {"gemm.weight": cropped})
    assert ops["ffn_out"].total_cycles == alone.ops[0].total_cycles
    assert ops["ffn_out"].useful_macs == M * cropped.kept_weights
    assert ops["ffn_out"].density == ffn_out.density  # the given mask's, as before


def test_dense_strategy_ignores_structure_as_it_ignores_masks():
    masks = {_name("v"): _mask((64, 64), dead_rows=[1]),
             _name("ffn_in"): _mask((128, 64), dead_rows=[2])}
    dense = _acc("dense")
    got = simulate(_wl(), dense, masks)
    assert got.structure == () and got.total_cycles == simulate(_wl(), dense).total_cycles


def test_all_heads_and_neurons_dead_drop_whole_ops():
    masks = {_name("v"): _mask((64, 64), dead_rows=[0, 1, 2, 3]),
             _name("ffn_in"): _mask((128, 64), dead_rows=range(8))}
    names = [o.name for o in simulate(_wl(), _acc(), masks).ops]
    for gone in ("qk", "softmax", "av", "q", "k", "v", "attn_out", "ffn_in", "gelu", "ffn_out"):
        assert f"L0.{gone}" not in names
    assert names == ["L0.attn_add", "L0.attn_ln", "L0.ffn_add", "L0.ffn_ln"]


def test_no_structure_is_bit_identical(monkeypatch):
    masks = {_name(r): BlockMask.random(B, (64, 64) if r in ("q", "k", "v", "attn_out")
                                        else ((128, 64) if r == "ffn_in" else (64, 128)),
                                        0.5, seed=i)
             for i, r in enumerate(("q", "k", "v", "attn_out", "ffn_in", "ffn_out"))}
    wl = _wl()
    assert carry_structure(wl, masks).layers == ()
    for strategy in ("tile-skip", "compact"):
        acc = _acc(strategy)
        got = simulate(wl, acc, masks)
        monkeypatch.setattr(sim_module, "carry_structure",
                            lambda w, m, _s: Carried(w, dict(m), ()))
        before = simulate(wl, acc, masks)
        monkeypatch.undo()
        assert got.to_dict() == before.to_dict()
        assert "structure" not in got.to_dict() and "structured" not in got.table()


def test_crop_mask_aligned_and_reblocked():
    mask = BlockMask(np.random.default_rng(0).random((4, 8)) < 0.5, B, (64, 128))
    cols = np.ones(128, bool)
    cols[32:48] = False
    assert crop_mask(mask, cols=cols).grid.tolist() == np.delete(mask.grid, 2, axis=1).tolist()
    # a removal that is not block aligned: the compacted matrix is re-blocked (any kept weight)
    rows = np.ones(64, bool)
    rows[:8] = False
    cropped = crop_mask(mask, rows=rows)
    assert cropped.matrix_shape == (56, 128)
    expect = np.pad(mask.to_dense()[8:], ((0, 8), (0, 0))).reshape(4, 16, 8, 16).any(axis=(1, 3))
    assert cropped.grid.tolist() == expect.tolist()


def test_structure_ignore_is_the_full_size_workload():
    masks = {_name("v"): _mask((64, 64), dead_rows=[1])}
    acc = _acc()
    ignored = simulate(_wl(), acc, masks, structure="ignore")
    assert ignored.structure == ()
    assert [o.shape for o in ignored.ops] == [o.shape for o in simulate(_wl(), acc).ops]
    assert simulate(_wl(), acc, masks).total_cycles < ignored.total_cycles
    with pytest.raises(ValueError, match="structure 'on'"):
        simulate(_wl(), acc, masks, structure="on")


def test_simulate_points_carries_the_structure_as_simulate_does():
    """The study's batched path drops the same heads and neurons, so its totals equal
    simulate's exactly (a dead V head and dead FFN neurons; both strategies, two clocks)."""
    masks = {_name("v"): _mask((64, 64), dead_rows=[1]),
             _name("ffn_in"): _mask((128, 64), dead_rows=[2, 5], density=0.6, seed=1),
             _name("ffn_out"): _mask((64, 128), density=0.6, seed=2)}
    accs = [hwmodels.load_board("zcu102", {"sparse_strategy": s, "clock_mhz": c})
            for s in ("tile-skip", "compact") for c in (150, 250)]
    batched = hwmodels.simulate_points(_wl(), accs, masks)
    for acc, rep in zip(accs, batched):
        one = simulate(_wl(), acc, masks)
        assert rep.structure == one.structure and rep.structure[0]["heads_output"] == 3
        assert rep.total_cycles == one.total_cycles and rep.executed_macs == one.executed_macs
        assert rep.energy_pj == one.energy_pj


def test_carried_structure_is_cached_by_content_with_masks_of_its_own():
    """carry_structure's result comes from sweepcache.CARRIED for equal content (another mask
    object, another workload object), equals the uncached result, and hands each caller its
    own dict of masks; under the dense strategy nothing is looked up."""
    from hwmodels import sweepcache

    def masks_of():
        return {_name("v"): _mask((64, 64), dead_rows=[1]),
                _name("ffn_in"): _mask((128, 64), dead_rows=[2, 5], density=0.6, seed=1)}

    sweepcache.clear_all()
    first = carry_structure(_wl(), masks_of(), "compact")
    assert sweepcache.CARRIED.misses == 1
    again = carry_structure(_wl(), masks_of(), "tile-skip")  # new objects, same content
    assert sweepcache.CARRIED.hits == 1 and again.masks is not first.masks
    with sweepcache.enabled(False):
        plain = carry_structure(_wl(), masks_of(), "compact")
    assert again.layers == plain.layers and again.workload.ops == plain.workload.ops
    assert {k: m.grid.tolist() for k, m in again.masks.items()} == \
        {k: m.grid.tolist() for k, m in plain.masks.items()}
    again.masks.clear()  # a caller's dict: the cached result keeps its masks
    assert len(carry_structure(_wl(), masks_of(), "compact").masks) == 2
    other = masks_of()
    other[_name("v")] = _mask((64, 64), dead_rows=[1, 2])  # two heads dead: another entry
    assert carry_structure(_wl(), other, "compact").layers[0].heads_output == 2
    assert first.layers[0].heads_output == 3 and sweepcache.CARRIED.misses == 2
    assert carry_structure(_wl(), masks_of(), "dense").layers == ()
    assert sweepcache.CARRIED.misses == 2 and sweepcache.CARRIED.hits == 2
