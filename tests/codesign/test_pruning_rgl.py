"""The reweighted group Lasso stage, the penalty and its schedule, and masked retraining.

Runs on the real all-MiniLM-L6-v2 weights and real SST-2 sentences; small (tens of examples,
sequence length 32, one torch thread so a busy machine does not oversubscribe the cores).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codesign.checkpoints import load_model
from codesign.glue import load_split
from codesign.pruning import oneshot_prune
from codesign.pruning.blocks import block_norms, prune_mask
from codesign.pruning.rgl import GroupLassoPenalty, RGLConfig
from codesign.pruning.train import TrainConfig, finetune

BLOCK = (16, 16)


@pytest.fixture(scope="module")
def minilm():
    loaded = load_model("minilm-l6", task="sst2")
    original = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    return loaded, original


@pytest.fixture(scope="module")
def sentences(glue_dir):
    return load_split("sst2", "train", glue_dir=glue_dir, limit=64, seed=0)


def _norms(loaded):
    params = dict(loaded.model.named_parameters())
    return {n: block_norms(params[n], BLOCK) for n, _, _ in loaded.structure.prunable(params)}


def test_rgl_shrinks_the_blocks_stage_two_prunes_more_than_plain_finetuning(minilm, sentences):
    loaded, original = minilm
    # 24 steps (64 sentences x 3 epochs, batch 8); the authors' lambda and eps, a larger lr than
    # their 2e-5 so that 24 steps move the weights measurably
    config = TrainConfig(epochs=3, lr=1e-4, batch_size=8, max_seq_len=32, seed=0, threads=1)
    loaded.model.load_state_dict(original)
    start = _norms(loaded)
    finetune(loaded.model, loaded.tokenizer, sentences, config, progress=False)
    plain = _norms(loaded)

    loaded.model.load_state_dict(original)
    penalty = GroupLassoPenalty(loaded.model, loaded.structure, BLOCK, RGLConfig())
    stats = finetune(loaded.model, loaded.tokenizer, sentences, config, regularizer=penalty,
                     progress=False)
    rgl = _norms(loaded)
    assert stats.steps == 24 and stats.final_reg_loss > 0

    shrink_rgl, shrink_plain = [], []
    for name in start:
        pruned = ~prune_mask(rgl[name], 0.5)  # the blocks stage 2 then prunes
        def relative(after):
            ratio = after[name] / start[name]
            return float(ratio[pruned].mean() / ratio[~pruned].mean())
        shrink_rgl.append(relative(rgl))
        shrink_plain.append(relative(plain))
    shrink_rgl, shrink_plain = np.array(shrink_rgl), np.array(shrink_plain)
    # in (nearly) every matrix the to-be-pruned blocks lose more norm, relative to the kept ones,
    # under RGL than under plain fine-tuning from the same seed and the same batches
    assert (shrink_rgl < shrink_plain).mean() >= 0.9
    assert shrink_rgl.mean() < shrink_plain.mean() - 2e-4
    assert shrink_rgl.mean() < 1.0


def _one_matrix_model(out_features, in_features):
    """A module whose only prunable matrix is named like DistilBERT's layer-0 query."""
    model = torch.nn.Module()
    model.transformer = torch.nn.Module()
    model.transformer.layer = torch.nn.ModuleList([torch.nn.Module()])
    model.transformer.layer[0].attention = torch.nn.Module()
    model.transformer.layer[0].attention.q_lin = torch.nn.Linear(in_features, out_features)
    return model, model.transformer.layer[0].attention.q_lin


def _structure():
    from codesign.checkpoints import structure_for

    return structure_for({"model_type": "distilbert"}).with_prefix("")


def test_penalty_is_the_reweighted_group_lasso_formula():
    torch.manual_seed(0)
    model, lin = _one_matrix_model(5, 6)
    config = RGLConfig(lambda_=0.5, eps=0.1, lambdas={0: 2.0})  # per-layer lambda wins
    penalty = GroupLassoPenalty(model, _structure(), (2, 4), config)
    norms = block_norms(lin.weight, (2, 4))  # 3x2 grid, zero-padded last block row
    expected = 2.0 * float((norms / (norms + 0.1)).sum())  # alpha = 1/(||W_g|| + eps)
    assert float(penalty(model, 0, 0).detach()) == pytest.approx(expected, rel=1e-6)
    # alpha is held between reweightings: halving W halves the penalty
    with torch.no_grad():
        lin.weight.mul_(0.5)
    assert float(penalty(model, 1, 1).detach()) == pytest.approx(expected * 0.5, rel=1e-6)
    # the gradient stays finite on an all-zero block
    with torch.no_grad():
        lin.weight[:2, :4] = 0
    penalty(model, 1, 2).backward()
    assert torch.isfinite(lin.weight.grad).all()


def test_reweighting_follows_the_schedule():
    model, _ = _one_matrix_model(4, 4)
    steps = GroupLassoPenalty(model, _structure(), (2, 2),
                              RGLConfig(milestones=(3,), reweight_every=5, schedule_unit="step"))
    for step in range(12):
        steps(model, step // 4, step)
    assert steps.reweight_points == [3, 5, 10]
    epochs = GroupLassoPenalty(model, _structure(), (2, 2), RGLConfig())
    for step in range(40):
        epochs(model, step // 5, step)  # 8 epochs of 5 steps
    assert epochs.reweight_points == [4]  # the authors' milestones [4, 8, 12, 16]
    with pytest.raises(ValueError, match="schedule_unit"):
        RGLConfig(schedule_unit="batch")


def test_masked_retraining_holds_pruned_blocks_at_zero(minilm, sentences):
    loaded, original = minilm
    loaded.model.load_state_dict(original)
    masks = oneshot_prune(loaded.model, loaded.structure, BLOCK, 0.5)
    params = dict(loaded.model.named_parameters())
    before = {n: params[n].detach().clone() for n in masks}
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=8, max_seq_len=32, seed=0, threads=1,
                         max_steps=3, weight_decay=0.01)
    stats = finetune(loaded.model, loaded.tokenizer, sentences, config, masks=masks,
                     progress=False)
    assert stats.steps == 3 and stats.examples == 24
    for name, mask in masks.items():
        kept = torch.as_tensor(mask.to_dense())
        w = params[name].detach()
        assert (w[~kept] == 0).all(), name
        assert not torch.equal(w[kept], before[name][kept]), name  # the rest did train
