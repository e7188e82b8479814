"""Folding dead heads and FFN neurons into biases (codesign.pruning.fold): on tiny random BERT,
RoBERTa and DistilBERT models with random biases, masks that kill FFN neurons and a V head
leave the logits unchanged (1e-5), zero exactly the columns they fed and change the biases;
a K-dead head and masks with nothing dead change nothing; `prune_checkpoint` folds before it
writes and records the fold in prune.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwmodels import BlockShape
from hwmodels.sparsity import BlockMask

from codesign.checkpoints import STRUCTURES
from codesign.pruning import apply_masks
from codesign.pruning.fold import FoldSummary, LayerFold, fold_dead_structure

HIDDEN, HEADS, INTER, LAYERS = 32, 2, 48, 2
D = HIDDEN // HEADS
BLOCK = (1, 8)  # one output row per block row: a dead row is one pruned block row


def _tiny(model_type):
    from transformers import AutoModelForSequenceClassification, BertConfig, DistilBertConfig
    from transformers import RobertaConfig

    common = dict(vocab_size=100, num_labels=3, max_position_embeddings=40)
    if model_type == "distilbert":
        config = DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTER,
                                  **common)
    else:
        cls = BertConfig if model_type == "bert" else RobertaConfig
        config = cls(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                     intermediate_size=INTER, pad_token_id=0, **common)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):  # HF initialises biases to zero: make the folds matter
                p.normal_(0.0, 0.5)
    return model, STRUCTURES[model_type]


def _masks(model, structure, *, dead_v_heads=(), dead_k_heads=(), dead_neurons=()):
    """Masks of BLOCK shape for every prunable matrix: a few scattered blocks pruned (never a
    whole row), plus the dead V / K head rows and ffn_in rows asked for, in every layer."""
    rng = np.random.default_rng(1)
    masks = {}
    for name, _layer, role in structure.prunable(model):
        out, inp = dict(model.named_parameters())[name].shape
        grid = rng.random((out, inp // BLOCK[1])) > 0.3
        grid[:, 0] = True  # every row keeps a block
        dead = {"v": [r for h in dead_v_heads for r in range(h * D, (h + 1) * D)],
                "k": [r for h in dead_k_heads for r in range(h * D, (h + 1) * D)],
                "ffn_in": list(dead_neurons)}.get(role, [])
        grid[dead] = False
        masks[name] = BlockMask(grid, BLOCK, (out, inp))
    return masks


def _logits(model):
    ids = torch.tensor([[2, 5, 7, 9, 11, 3, 0, 0], [2, 13, 17, 19, 23, 29, 31, 3]])
    attention = (ids != 0).long()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=attention).logits


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert"])
def test_fold_keeps_the_logits_and_zeroes_the_fed_columns(model_type):
    model, structure = _tiny(model_type)
    masks = _masks(model, structure, dead_v_heads=(1,), dead_neurons=(3, 7, 40))
    apply_masks(model, masks)
    before, state = _logits(model), _state(model)
    summary = fold_dead_structure(model, masks, structure)
    assert summary == FoldSummary(heads=2, neurons=6, layers=(
        LayerFold(0, (1,), 3), LayerFold(1, (1,), 3)))
    assert summary.as_dict()["layers"][0] == {"layer": 0, "heads": [1], "neurons": 3}
    after = _logits(model)
    assert torch.allclose(after, before, rtol=0, atol=1e-5)
    params = dict(model.named_parameters())
    changed = set()  # the folded weights and biases
    for layer in range(LAYERS):
        attn_out = params[structure.weight_name(layer, "attn_out")]
        ffn_out = params[structure.weight_name(layer, "ffn_out")]
        assert bool((attn_out[:, D:] == 0).all())  # head 1's d input columns
        assert torch.equal(attn_out[:, :D], state[structure.weight_name(layer, "attn_out")][:, :D])
        assert bool((ffn_out[:, [3, 7, 40]] == 0).all())
        live = [i for i in range(INTER) if i not in (3, 7, 40)]
        assert torch.equal(ffn_out[:, live], state[structure.weight_name(layer, "ffn_out")][:, live])
        for role in ("attn_out", "ffn_out"):
            bias = structure.weight_name(layer, role)[: -len("weight")] + "bias"
            assert not torch.equal(params[bias], state[bias])
            changed |= {bias, structure.weight_name(layer, role)}
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()
               if k not in changed)
    # the returned masks: attn_out's block columns 2, 3 (head 1's columns 16-31) pruned; the
    # 3 neurons fill no whole 8-column block of ffn_out, so its mask is the input's own
    for name, mask in masks.items():
        layer, role = structure.parse(name)
        if role == "attn_out":
            assert (summary.masks[name].grid == mask.grid & [True, True, False, False]).all()
            assert mask.grid[:, 2:].any()  # the input masks are not changed
        else:
            assert summary.masks[name] is mask
    # folding again adds nothing: the columns are zero now
    again = _state(model)
    assert fold_dead_structure(model, masks, structure) == summary
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())


def test_the_folded_bias_is_the_closed_form():
    model, structure = _tiny("bert")
    masks = _masks(model, structure, dead_v_heads=(0,), dead_neurons=(5,))
    apply_masks(model, masks)
    params = {k: v.detach().clone().double() for k, v in model.named_parameters()}
    fold_dead_structure(model, masks, structure)
    p = "bert.encoder.layer.0."
    gelu = torch.nn.functional.gelu(params[p + "intermediate.dense.bias"][5])
    want = params[p + "output.dense.bias"] + params[p + "output.dense.weight"][:, 5] * gelu
    got = dict(model.named_parameters())[p + "output.dense.bias"].double()
    assert torch.allclose(got, want, rtol=0, atol=1e-6)
    b_v = params[p + "attention.self.value.bias"][:D]
    want = params[p + "attention.output.dense.bias"] + \
        params[p + "attention.output.dense.weight"][:, :D] @ b_v
    got = dict(model.named_parameters())[p + "attention.output.dense.bias"].double()
    assert torch.allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dead", [{}, {"dead_k_heads": (0,)}])
def test_nothing_dead_or_k_dead_changes_nothing(dead):
    """A K-dead head has no exact fold (its context is the mean of V over the keys)."""
    model, structure = _tiny("bert")
    masks = _masks(model, structure, **dead)
    apply_masks(model, masks)
    state = _state(model)
    assert fold_dead_structure(model, masks, structure) == FoldSummary(0, 0, ())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_unapplied_masks_are_one_line():
    model, structure = _tiny("bert")
    masks = _masks(model, structure, dead_neurons=(2,))
    with pytest.raises(ValueError, match=r"fold: bert\.encoder\.layer\.0\.intermediate\.dense"
                                         r"\.weight has nonzero weights .* apply the masks"):
        fold_dead_structure(model, masks, structure)


def test_prune_checkpoint_folds_and_records_it(tmp_path, glue_dir):
    from codesign.masks import extract_masks, load_masks
    from codesign.pruning import prune_checkpoint
    from codesign.pruning.train import TrainConfig
    from safetensors.torch import load_file

    value0 = "bert.encoder.layer.0.attention.self.value.weight"
    train = TrainConfig(epochs=0, batch_size=8, max_seq_len=32, seed=0, threads=1)
    done = prune_checkpoint(model="minilm-l6", task="sst2", block_shape=BlockShape(1, 384),
                            ratio={"default": 0.0, "ffn_in": 0.5, value0: 1.0},
                            method="oneshot", out_dir=tmp_path / "out", train=train,
                            retrain=None, glue_dir=glue_dir, examples=16, eval_examples=16,
                            progress=False)
    info = json.loads(done.info_path.read_text())
    # 1x384 blocks are whole rows: layer 0's 12 V heads and half of every layer's 1536 neurons
    assert info["fold"] == done.fold
    assert (done.fold["heads"], done.fold["neurons"]) == (12, 6 * 768)
    assert done.fold["layers"][0] == {"layer": 0, "heads": list(range(12)), "neurons": 768}
    weights = load_file(str(done.checkpoint / "model.safetensors"))
    masks = load_masks(done.masks_path).masks
    # the mask file is the folded weights' own: layer 0's attn_out is all pruned now
    assert extract_masks(done.checkpoint, "1x384").masks == masks
    assert not masks["bert.encoder.layer.0.attention.output.dense.weight"].grid.any()
    assert bool((weights["bert.encoder.layer.0.attention.output.dense.weight"] == 0).all())
    for layer in range(6):
        p = f"bert.encoder.layer.{layer}."
        dead = torch.from_numpy(~masks[p + "intermediate.dense.weight"].grid[:, 0])
        out = weights[p + "output.dense.weight"]
        assert int(dead.sum()) == 768 and bool((out[:, dead] == 0).all())
        assert bool((out[:, ~dead] != 0).any(dim=0).all())
