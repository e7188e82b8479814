"""Fisher block saliency and the global ranking (codesign.pruning.fisher) on the real
all-MiniLM-L6-v2 weights (a 2-layer slice, SST-2 and STS-B heads, real training sentences):
the scores against an independent autograd computation through explicit mask variables, the
global ranking's exact counts, and fisher_prune's masks and re-fit."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.func import functional_call

from codesign.accuracy.recipe import Recipe
from codesign.accuracy import AccuracyError
from codesign.glue import load_split
from codesign.pruning import calibrate as cal
from codesign.pruning.balance import PEBalance, balanced_keep
from codesign.pruning.fisher import block_weights, fisher_prune, fisher_scores, global_keep

from cs_helpers import minilm_slice, spy_prune_checkpoint

BLOCK = (16, 16)


def _slice(task, glue_dir):
    loaded, original = minilm_slice(2, task)
    split = load_split(task, "train", glue_dir=glue_dir, limit=24, seed=3)
    batches = cal.tokenise_calibration(loaded.tokenizer, split, max_seq_len=32, batch_size=8)
    return task, loaded, original, batches


@pytest.fixture(scope="module", params=["sst2", "stsb"])
def task_slice(request, glue_dir):
    return _slice(request.param, glue_dir)


@pytest.fixture(scope="module")
def sst2_slice(glue_dir):
    return _slice("sst2", glue_dir)


def _mask_fisher(model, batches, name, block_shape):
    """0.5 * E_y[(dlog p(y) / dm_b)^2] per block of `name`, by autograd through a grid of mask
    variables m (1 = kept) that multiply the weight block by block (regression: dy/dm)."""
    weight = dict(model.named_parameters())[name].detach()
    rows, cols = weight.shape
    grid = (-(-rows // block_shape[0]), -(-cols // block_shape[1]))
    total, count = torch.zeros(grid, dtype=torch.float64), 0
    for batch in batches:
        for r in range(batch["input_ids"].shape[0]):
            n = int(batch["attention_mask"][r].sum())
            one = {k: v[r:r + 1, :n] for k, v in batch.items()}
            m = torch.ones(grid, dtype=torch.float64, requires_grad=True)
            element = m.repeat_interleave(block_shape[0], 0).repeat_interleave(
                block_shape[1], 1)[:rows, :cols]
            logits = functional_call(model, {name: weight * element.float()}, kwargs=one).logits[0]
            if logits.numel() == 1:
                total += torch.autograd.grad(logits.sum(), m)[0].pow(2)
            else:
                logp = torch.log_softmax(logits, -1)
                for c in range(logits.numel()):
                    g = torch.autograd.grad(logp[c], m, retain_graph=True)[0]
                    total += float(logp[c].detach().exp()) * g.pow(2)
            count += 1
    return (0.5 * total / count).numpy()


def test_scores_equal_mask_variable_fisher_and_leave_the_model(task_slice):
    task, loaded, original, batches = task_slice
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    got = fisher_scores(model, loaded.structure, block_shape=BLOCK, calibration=batches[:1],
                        threads=1)
    assert got.examples == 8 and len(got.scores) == 12
    for name in ("bert.encoder.layer.0.attention.self.query.weight",
                 "bert.encoder.layer.1.output.dense.weight"):
        want = _mask_fisher(model, batches[:1], name, BLOCK)
        assert got.scores[name].shape == want.shape
        np.testing.assert_allclose(got.scores[name], want, rtol=1e-3, atol=1e-12 * want.max())
        assert want.max() > 0
    for name, p in model.named_parameters():
        assert torch.equal(p, original[name]) and p.grad is None, name


def test_scores_of_the_first_examples_are_those_of_those_sentences(sst2_slice):
    _, loaded, original, batches = sst2_slice  # 3 batches of 8 sentences
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    first = fisher_scores(model, loaded.structure, block_shape=BLOCK, calibration=batches,
                          examples=12, threads=1)
    cut = [batches[0], {k: v[:4] for k, v in batches[1].items()}]
    want = fisher_scores(model, loaded.structure, block_shape=BLOCK, calibration=cut, threads=1)
    assert first.examples == want.examples == 12
    for name, score in want.scores.items():
        np.testing.assert_allclose(first.scores[name], score, rtol=1e-12, atol=0)


def test_global_keep_removes_the_least_score_per_weight_first():
    scores = {"a": np.array([[1.0, 8.0], [3.0, 0.5]]), "b": np.array([[2.0, 6.0]])}
    weights = {"a": np.full((2, 2), 4.0), "b": np.array([[4.0, 1.0]])}  # b's last block padded
    # score per weight: a 0.25 2 0.75 0.125 | b 0.5 6; total weight 21
    keep = global_keep(scores, ratio=0.3, weights=weights)  # >= 6.3: a[1,1], a[0,0] (8)
    assert keep["a"].tolist() == [[False, True], [True, False]] and keep["b"].all()
    keep = global_keep(scores, ratio=0.5, weights=weights)  # >= 10.5: + b[0,0] (12)
    assert keep["a"].tolist() == [[False, True], [True, False]]
    assert keep["b"].tolist() == [[False, True]]
    assert all(k.all() for k in global_keep(scores, ratio=0.0, weights=weights).values())
    assert not any(k.any() for k in global_keep(scores, ratio=1.0, weights=weights).values())
    with pytest.raises(ValueError, match="prune ratio 1.5"):
        global_keep(scores, ratio=1.5, weights=weights)
    assert block_weights((384, 5), (256, 2)).tolist() == [[512, 512, 256], [256, 256, 128]]


def test_global_keep_floor_keeps_each_matrixs_best_blocks():
    # a's blocks have the least score per weight: without a floor a empties first
    scores = {"a": np.array([[1.0, 2.0, 3.0, 4.0]]), "b": np.array([[50.0, 60.0, 70.0, 80.0]])}
    weights = {n: np.ones((1, 4)) for n in scores}
    free = global_keep(scores, ratio=0.5, weights=weights)
    assert not free["a"].any() and free["b"].all()
    # floor 0.5: a keeps its 2 best (3, 4); the other 2 removals come from b's least (50, 60)
    keep = global_keep(scores, ratio=0.5, weights=weights, min_density=0.5)
    assert keep["a"].tolist() == [[False, False, True, True]]
    assert keep["b"].tolist() == [[False, False, True, True]]
    # ceil(0.3 x 4) = 2 blocks kept at least: a loses 1 and 2, then b its least, 50
    keep = global_keep(scores, ratio=0.375, weights=weights, min_density=0.3)
    assert keep["a"].tolist() == [[False, False, True, True]]
    assert keep["b"].tolist() == [[False, True, True, True]]
    # a floor that does not bind leaves the ranking as it was
    same = global_keep(scores, ratio=0.25, weights=weights, min_density=0.25)
    assert all((same[n] == global_keep(scores, ratio=0.25, weights=weights)[n]).all()
               for n in scores)
    with pytest.raises(ValueError, match="unreachable with min_density 0.5"):
        global_keep(scores, ratio=0.6, weights=weights, min_density=0.5)
    with pytest.raises(ValueError, match="min_density 1.5"):
        global_keep(scores, ratio=0.5, weights=weights, min_density=1.5)


@pytest.mark.parametrize("scope", ["global", "matrix"])
def test_fisher_prune_masks_counts_and_zeros(sst2_slice, scope):
    _, loaded, original, batches = sst2_slice
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    masks = fisher_prune(model, loaded.structure, block_shape=BLOCK, ratio=0.5,
                         calibration=batches, scope=scope, threads=1)
    params = dict(model.named_parameters())
    removed = sum(float((~m.grid).sum()) * 256 for m in masks.values())
    total = sum(m.grid.size * 256 for m in masks.values())
    densities = {round(float(m.grid.mean()), 4) for m in masks.values()}
    if scope == "global":
        assert total / 2 <= removed < total / 2 + 256  # the fewest blocks reaching half
        assert len(densities) > 1  # the ranking spreads the removal unevenly
    else:
        assert densities == {0.5}
    for name, m in masks.items():
        element = torch.from_numpy(np.array(m.grid)).repeat_interleave(16, 0)
        element = element.repeat_interleave(16, 1)
        assert torch.all(params[name][~element] == 0), name
        assert not torch.equal(params[name], original[name]), name  # the kept weights re-fit


def test_fisher_prune_floor_keeps_blocks_in_every_matrix(sst2_slice):
    _, loaded, original, batches = sst2_slice
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    masks = fisher_prune(model, loaded.structure, block_shape=BLOCK, ratio=0.8,
                         calibration=batches, min_density=0.15, threads=1)
    kept = {n: int(m.grid.sum()) for n, m in masks.items()}
    floors = {n: int(np.ceil(0.15 * m.grid.size)) for n, m in masks.items()}
    assert all(kept[n] >= floors[n] for n in masks), (kept, floors)
    assert any(kept[n] == floors[n] for n in masks)  # the floor binds at 5x
    removed = sum(float((~m.grid).sum()) * 256 for m in masks.values())
    total = sum(m.grid.size * 256 for m in masks.values())
    assert 0.8 * total <= removed < 0.8 * total + 256


def test_fisher_prune_balanced_is_balanced_keep_of_each_global_count(sst2_slice):
    _, loaded, original, batches = sst2_slice
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    scores = fisher_scores(model, loaded.structure, block_shape=BLOCK, calibration=batches,
                           threads=1).scores
    free = global_keep(scores, ratio=0.5, weights={
        n: block_weights(tuple(p.shape), BLOCK) for n, p in model.named_parameters()
        if n in scores})
    balance = PEBalance(cols=32)
    masks = fisher_prune(model, loaded.structure, block_shape=BLOCK, ratio=0.5,
                         calibration=batches, balance=balance, threads=1)
    for name, m in masks.items():
        want = balanced_keep(scores[name], int(free[name].sum()),
                             balance.groups(m.matrix_shape, BLOCK))
        assert (m.grid == want).all() and m.grid.sum() == free[name].sum(), name


def test_recipe_scope_and_keys():
    assert Recipe().calib_saliency == "fisher" and Recipe().scope == "global"
    assert Recipe(calib_saliency="obs").scope == "matrix"  # the saliency's own scope
    assert "calib_scope" not in Recipe().stage_fields("calibrated")
    assert "calib_scope" not in Recipe(calib_saliency="obs").stage_fields("calibrated")
    per_matrix = Recipe(calib_saliency="fisher", calib_scope="matrix")
    assert per_matrix.stage_fields("calibrated")["calib_scope"] == "matrix"
    assert per_matrix.hash("calibrated") != Recipe().hash("calibrated")
    assert Recipe(calib_scope="global").hash("calibrated") == Recipe().hash("calibrated")
    assert Recipe.from_dict(per_matrix.to_dict()) == per_matrix
    with pytest.raises(AccuracyError, match="recipe.calib_scope=global needs calib_saliency="
                                            "fisher"):
        Recipe(calib_saliency="obs", calib_scope="global")
    with pytest.raises(AccuracyError, match="recipe.calib_scope='layer': choose one of"):
        Recipe(calib_scope="layer")
    # the global ranking's floor (default 0.05): keyed only where it applies and is not 0
    assert Recipe().stage_fields("calibrated")["calib_min_density"] == 0.05
    unfloored = Recipe(calib_min_density=0.0)
    assert "calib_min_density" not in unfloored.stage_fields("calibrated")
    assert unfloored.hash("calibrated") != Recipe().hash("calibrated")
    assert unfloored.hash("oneshot") == Recipe().hash("oneshot")
    assert "calib_min_density" not in per_matrix.stage_fields("calibrated")  # matrix: no floor
    assert "calib_min_density" not in Recipe(calib_saliency="obs").stage_fields("calibrated")
    # the Fisher sample: keyed only below calib_examples, with fisher
    assert Recipe().stage_fields("calibrated")["calib_fisher_examples"] == 256
    for every in (Recipe(calib_examples=256), Recipe(calib_fisher_examples=None),
                  Recipe(calib_saliency="obs")):
        assert "calib_fisher_examples" not in every.stage_fields("calibrated")
    assert Recipe(calib_examples=256).hash("calibrated") == \
        Recipe(calib_examples=256, calib_fisher_examples=None).hash("calibrated")
    with pytest.raises(AccuracyError, match=r"calib_min_density=1.0: a fraction .* \[0, 1\)"):
        Recipe(calib_min_density=1.0)


def test_prune_cli_passes_saliency_and_scope(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from codesign.cli import main
    from codesign.pruning.checkpoint import CalibrationConfig, prune_checkpoint

    seen = spy_prune_checkpoint(monkeypatch)
    args = ["prune", "--task", "sst2", "--block", "16x16", "--ratio", "0.5", "--method",
            "calibrated", "--out", str(tmp_path / "o")]
    assert "stop here" in CliRunner().invoke(main, args).output
    assert (seen["calibration"].saliency, seen["calibration"].scope) == ("fisher", None)
    CliRunner().invoke(main, args + ["--saliency", "obs", "--scope", "matrix"])
    assert (seen["calibration"].saliency, seen["calibration"].scope) == ("obs", "matrix")
    with pytest.raises(ValueError, match="^scope global needs saliency fisher"):
        prune_checkpoint(model="minilm-l6", task="sst2", block_shape=(16, 16), ratio=0.5,
                         method="calibrated", out_dir=tmp_path / "o", train=None, retrain=None,
                         calibration=CalibrationConfig(saliency="obs", scope="global"))


def test_recipe_overrides_take_the_text_fields():
    from codesign.cli.accuracy import _parse_recipe_overrides

    spec = _parse_recipe_overrides(("calib_saliency=fisher", "calib_scope=matrix"))
    assert spec == {"calib_saliency": "fisher", "calib_scope": "matrix"}
    assert Recipe.from_dict(spec).scope == "matrix"
