"""PE-balanced block pruning (codesign.pruning.balance): balance groups follow the PE array,
compaction's own imbalance figure is exactly 1.0, the per-matrix count is exact, every block row
keeps its most salient blocks, the remainder rule, and the unbalanced default is unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hwmodels
from hwmodels.simulate import gemm_workload
from hwmodels.sparsity import (BlockMask, balance_groups, gemm_blocks,
                               nonzeros_per_pe_column)

from codesign.pruning.balance import PEBalance, balanced_keep, keep_blocks
from codesign.pruning.blocks import prune_mask

from cs_helpers import minilm_slice, spy_prune_checkpoint


def test_balance_groups_closed_forms():
    # 16-row blocks on 32 PE columns: two block rows per column tile, 768 / 32 = 24 tiles
    assert balance_groups(768, 16, 32) == tuple((2 * i, 2 * i + 2) for i in range(24))
    # 48-row blocks straddle the tile edge at 32 and 64: one group of both lanes
    assert balance_groups(96, 48, 32) == ((0, 2),)
    # blocks taller than the array: each lane alone (it spans two tiles)
    assert balance_groups(128, 64, 32) == ((0, 1), (1, 2))
    # a partial last tile: 40 rows = 32 + 8, lanes of 8 rows
    assert balance_groups(40, 8, 32) == ((0, 4), (4, 5))


def _acc(strategy="compact", cols=32):
    return hwmodels.load_board("zcu102", {"sparse_strategy": strategy,
                                          "pe_array": {"cols": cols}})


def _simulate_imbalance(mask: BlockMask, acc) -> float:
    out, inp = mask.matrix_shape
    wl = gemm_workload(64, inp, out)
    return hwmodels.simulate(wl, acc, {"gemm.weight": mask}).load_imbalance


@pytest.mark.parametrize("block,ratio,cols", [((16, 16), 0.5, 32), ((8, 1), 0.75, 32),
                                              ((8, 16), 0.625, 32), ((16, 16), 0.5, 64)])
def test_balanced_mask_imbalance_one_and_same_count(block, ratio, cols):
    rng = np.random.default_rng(1)
    out, inp = 256, 512
    scores = torch.from_numpy(rng.random((out // block[0], inp // block[1])))
    balance = PEBalance(cols)
    plain = prune_mask(scores, ratio)
    keep = keep_blocks(scores, ratio, balance=balance, matrix_shape=(out, inp), block_shape=block)
    assert int(keep.sum()) == int(plain.sum())  # the exact per-matrix count
    groups = balance.groups((out, inp), block)
    counts = keep.numpy().sum(axis=1)
    for lo, hi in groups:  # every lane of a group keeps the same count
        assert len(set(counts[lo:hi].tolist())) == 1
    acc = _acc(cols=cols)
    mask = BlockMask(keep.numpy(), block, (out, inp))
    assert _simulate_imbalance(mask, acc) == 1.0  # exactly, hwmodels' own figure
    per_col = nonzeros_per_pe_column(gemm_blocks(mask), cols)
    assert per_col.min() == per_col.max()  # the per-PE-column load is flat too
    # the unbalanced mask of the same scores is not balanced (the test can fail)
    assert _simulate_imbalance(BlockMask(plain.numpy(), block, (out, inp)), acc) > 1.0


def test_saliency_order_within_each_lane():
    rng = np.random.default_rng(2)
    scores = rng.random((32, 24))
    grid = balanced_keep(scores, 400, balance_groups(32 * 16, 16, 64))  # 4 lanes per group
    assert grid.sum() == 400
    for lane in range(32):
        k = grid[lane].sum()
        top = np.argsort(-scores[lane], kind="stable")[:k]
        assert set(np.flatnonzero(grid[lane])) == set(top)


def test_group_levels_follow_summed_saliency():
    # two groups of two lanes; levels by gain per block: 9, 8, 7 (group 0), 5 (group 1)
    scores = np.array([[9, 8, 7, 2], [9, 8, 7, 2], [5, 1, 1, 1], [5, 1, 1, 1]], float)
    grid = balanced_keep(scores, 8, ((0, 2), (2, 4)))
    assert grid.sum(axis=1).tolist() == [3, 3, 1, 1]
    assert grid[0].tolist() == [True, True, True, False]
    assert balanced_keep(scores, 8, ((0, 4),)).sum(axis=1).tolist() == [2, 2, 2, 2]


def test_remainder_rule_one_group_closed_form_imbalance():
    """keep = 2 * S + 1 over groups of two lanes: one lane of ONE group keeps one more, the lane
    whose next block is the most salient; compaction's imbalance is (S + 1) / (S + 1/2)."""
    rng = np.random.default_rng(3)
    out, inp, block = 256, 128, (16, 16)  # 16 lanes of 8 blocks, 8 groups of 2 (32 columns)
    scores = rng.random((16, 8))
    groups = balance_groups(out, 16, 32)
    grid = balanced_keep(scores, 61, groups)
    assert grid.sum() == 61
    counts = grid.sum(axis=1)
    uneven = [(lo, hi) for lo, hi in groups if len(set(counts[lo:hi].tolist())) > 1]
    assert len(uneven) == 1
    lo, hi = uneven[0]
    assert sorted(counts[lo:hi].tolist())[1] - sorted(counts[lo:hi].tolist())[0] == 1
    s = sum(int(counts[a:b].min()) for a, b in groups)  # levels taken
    assert 2 * s + 1 == 61
    mask = BlockMask(grid, block, (out, inp))
    for dataflow in ("ws", "os"):
        acc = hwmodels.load_board("zcu102", {"sparse_strategy": "compact", "dataflow": dataflow})
        assert _simulate_imbalance(mask, acc) == pytest.approx((s + 1) / (s + 0.5), rel=1e-12)


def test_single_lane_groups_equal_unbalanced_pruning():
    """Blocks taller than the array: every lane is its own group, so balancing constrains
    nothing and the masks are those of prune_mask (scores without ties)."""
    rng = np.random.default_rng(4)
    scores = torch.from_numpy(rng.random((4, 32)))
    for ratio in (0.1, 0.5, 0.9):
        keep = keep_blocks(scores, ratio, balance=PEBalance(32), matrix_shape=(256, 512),
                           block_shape=(64, 16))
        assert torch.equal(keep, prune_mask(scores, ratio))


def test_keep_blocks_without_balance_is_prune_mask_and_bad_input():
    scores = torch.rand(6, 5)
    assert torch.equal(keep_blocks(scores, 0.4, balance=None, matrix_shape=(6, 5),
                                   block_shape=(1, 1)), prune_mask(scores, 0.4))
    with pytest.raises(ValueError, match="cols 0"):
        PEBalance(0)
    with pytest.raises(ValueError, match="do not cover"):
        balanced_keep(np.ones((4, 4)), 4, ((0, 2),))


@pytest.fixture(scope="module")
def minilm1():
    return minilm_slice(1)


def test_oneshot_balanced_on_minilm(minilm1):
    from codesign.pruning import oneshot_prune
    from codesign.pruning.blocks import block_norms

    loaded, original = minilm1
    loaded.model.load_state_dict(original)
    plain = oneshot_prune(loaded.model, loaded.structure, (16, 16), 0.5)
    loaded.model.load_state_dict(original)
    params = dict(loaded.model.named_parameters())
    norms = {n: block_norms(params[n], (16, 16)) for n in plain}
    balanced = oneshot_prune(loaded.model, loaded.structure, (16, 16), 0.5,
                             balance=PEBalance(32))
    acc = _acc()
    for name, mask in balanced.items():
        assert mask.kept_blocks == plain[name].kept_blocks
        assert torch.equal(torch.from_numpy(np.array(plain[name].grid)), prune_mask(norms[name], 0.5))
        assert _simulate_imbalance(mask, acc) == 1.0
        assert bool((params[name].detach()[~torch.from_numpy(mask.to_dense())] == 0).all())
    assert any(balanced[n] != plain[n] for n in plain)


def test_calibrated_balanced_on_minilm(minilm1, glue_dir):
    from codesign.glue import load_split
    from codesign.pruning import calibrate as cal

    loaded, original = minilm1
    loaded.model.load_state_dict(original)
    split = load_split("sst2", "train", glue_dir=glue_dir, limit=24, seed=3)
    batches = cal.tokenise_calibration(loaded.tokenizer, split, max_seq_len=24, batch_size=12)
    done = cal.calibrate_prune(loaded.model, loaded.structure, block_shape=(16, 16), ratio=0.5,
                               calibration=batches, saliency="obs", balance=PEBalance(32))
    acc = _acc()
    for mask in done.masks.values():
        assert mask.kept_blocks == mask.grid.size // 2
        assert _simulate_imbalance(mask, acc) == 1.0
    for fit in done.fits:  # the re-fit still runs on the balanced masks
        assert fit.error_fitted <= fit.error_masked


def test_cli_balanced_passes_the_array_balance(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from codesign.cli import main

    seen = spy_prune_checkpoint(monkeypatch)
    args = ["prune", "--task", "sst2", "--block", "16x16", "--ratio", "0.5", "--method",
            "oneshot", "--out", str(tmp_path / "o"), "--balanced", "--set", "pe_array.cols=16"]
    res = CliRunner().invoke(main, args)
    assert "stop here" in res.output
    assert seen["balance"] == PEBalance(16)
    seen.clear()
    CliRunner().invoke(main, args[:-3])  # no --balanced: the call is as before
    assert seen and "balance" not in seen
    bad = CliRunner().invoke(main, args[:8] + ["rgl"] + args[9:])
    assert bad.exit_code != 0 and "--balanced applies to --method oneshot or calibrated" in \
        bad.output
    bad = CliRunner().invoke(main, args[:8] + ["calibrated", "--speedup", "2"] + args[9:])
    assert bad.exit_code != 0 and "--balanced goes with --ratio" in bad.output


def test_study_key_balanced_default_false_and_true_accepted(tmp_path):
    from codesign.study import load_study
    from codesign.sweep.space import context_of

    base = (Path(__file__).parent / "test_study_schema.py").read_text()
    text = base.split('BASE = """\\\n', 1)[1].split('"""', 1)[0]
    path = tmp_path / "study.yaml"
    path.write_text(text)
    plain = load_study(path)
    assert plain.pruning.balanced is False
    path.write_text(text.replace("  method: magnitude\n", "  method: magnitude\n  balanced: false\n"))
    assert context_of(load_study(path)) == context_of(plain)  # point ids unchanged
    path.write_text(text.replace("  method: magnitude\n", "  method: magnitude\n  balanced: true\n"))
    assert load_study(path).pruning.balance_choices == [True]
