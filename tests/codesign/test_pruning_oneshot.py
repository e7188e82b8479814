"""One-shot block pruning of the real all-MiniLM-L6-v2 weights, mask files and extraction."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codesign.checkpoints import load_model
from codesign.masks import extract_masks, load_masks
from codesign.pruning import apply_masks, oneshot_prune, save_pruned
from codesign.pruning.blocks import block_norms


@pytest.fixture(scope="module")
def minilm():
    loaded = load_model("minilm-l6", task="sst2")
    original = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    return loaded, original


@pytest.fixture()
def fresh(minilm):
    loaded, original = minilm
    loaded.model.load_state_dict(original)
    return loaded


@pytest.mark.parametrize("block,ratio", [((16, 16), 0.5), ((32, 1), 0.7), ((1, 64), 0.3)])
def test_pruned_blocks_are_zero_and_density_is_one_minus_ratio(fresh, block, ratio):
    params = dict(fresh.model.named_parameters())
    before = {n: params[n].detach().clone() for n, _, _ in fresh.structure.prunable(params)}
    masks = oneshot_prune(fresh.model, fresh.structure, block, ratio)
    assert set(masks) == set(before) and len(masks) == 36
    for name, mask in masks.items():
        w = params[name].detach()
        kept = torch.as_tensor(mask.to_dense())
        assert (w[~kept] == 0).all(), name
        assert torch.equal(w[kept], before[name][kept]), name  # kept weights untouched
        n_blocks = mask.grid.size
        assert n_blocks - mask.kept_blocks == round(ratio * n_blocks)
        one_block = block[0] * block[1] / w.numel()
        assert abs(mask.density - (1 - ratio)) <= one_block + 1e-12, name
        # the pruned blocks are the ones with the smallest norms before pruning
        norms = block_norms(before[name], block).numpy()
        assert norms[~mask.grid].max() <= norms[mask.grid].min()


def test_padded_shapes_on_384x384(fresh):
    # 256x1 leaves a 128-row partial block row on 384-row matrices; 5x7 pads both ways
    for block in [(256, 1), (5, 7)]:
        masks = oneshot_prune(fresh.model, fresh.structure, block, 0.5)
        q = masks[fresh.structure.weight_name(0, "q")]
        assert q.grid.shape == (math.ceil(384 / block[0]), math.ceil(384 / block[1]))
        params = dict(fresh.model.named_parameters())
        for name, mask in masks.items():
            assert mask.kept_blocks == mask.grid.size - round(0.5 * mask.grid.size)
            assert (params[name].detach()[~torch.as_tensor(mask.to_dense())] == 0).all()


def test_save_extract_reload_round_trip(fresh, tmp_path):
    masks = oneshot_prune(fresh.model, fresh.structure, (16, 16), 0.5)
    saved = save_pruned(tmp_path / "pruned", fresh.model, fresh.tokenizer, fresh.structure, masks,
                        metadata={"method": "oneshot", "ratio": 0.5, "parent_sha256": fresh.sha256})
    # the mask file round-trips
    file_set = load_masks(saved["masks"])
    assert file_set.masks == masks
    assert file_set.metadata["source_sha256"] == saved["sha256"]
    assert file_set.metadata["parent_sha256"] == fresh.sha256
    assert file_set.metadata["roles"][fresh.structure.weight_name(4, "v")] == (4, "v")
    # extraction from the saved checkpoint reproduces the mask exactly
    extracted = extract_masks(saved["checkpoint"], (16, 16))
    assert extracted.masks == masks
    assert extracted.stats.partial_blocks == 0  # MiniLM has no exact zeros of its own
    assert extracted.stats.density == pytest.approx(0.5)
    assert extracted.metadata["source_sha256"] == saved["sha256"]
    # the pruned model loads with transformers and runs, pruned blocks still zero
    again = load_model(saved["checkpoint"])
    assert again.sha256 == saved["sha256"]
    params = dict(again.model.named_parameters())
    for name, mask in masks.items():
        assert (params[name].detach()[~torch.as_tensor(mask.to_dense())] == 0).all()
    batch = again.tokenizer(["a gripping, funny film", "dull"], padding=True,
                            return_tensors="pt")
    with torch.no_grad():
        logits = again.model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    with torch.no_grad():
        same = fresh.model(**batch).logits
    torch.testing.assert_close(logits, same)


def test_apply_masks_checks_names_and_shapes(fresh):
    masks = oneshot_prune(fresh.model, fresh.structure, (16, 16), 0.5)
    name = fresh.structure.weight_name(0, "q")
    with pytest.raises(ValueError, match="no such parameter"):
        apply_masks(fresh.model, {"nope.weight": masks[name]})
    wrong = {fresh.structure.weight_name(0, "ffn_in"): masks[name]}
    with pytest.raises(ValueError, match="matrix shape"):
        apply_masks(fresh.model, wrong)


def test_per_layer_ratios(fresh):
    masks = oneshot_prune(fresh.model, fresh.structure, (16, 16),
                          {"default": 0.5, 0: 0.25, "ffn_in": 0.75})
    s = fresh.structure
    assert masks[s.weight_name(0, "q")].block_density == 0.75
    assert masks[s.weight_name(0, "ffn_in")].block_density == 0.75  # layer 0 beats role
    assert masks[s.weight_name(3, "ffn_in")].block_density == 0.25
    assert masks[s.weight_name(3, "k")].block_density == 0.5
    assert np.isclose(masks[s.weight_name(5, "ffn_out")].density, 0.5)


def test_masks_attach_to_the_hardware_workload_by_name(fresh, tmp_path):
    import hwmodels

    masks = oneshot_prune(fresh.model, fresh.structure, (16, 16), 0.5)
    saved = save_pruned(tmp_path / "p", fresh.model, fresh.tokenizer, fresh.structure, masks,
                        metadata={"method": "oneshot", "ratio": 0.5})
    config = fresh.model.config.to_dict()
    workload = hwmodels.bert_encoder(config, 32, weight_names=fresh.structure.weight_name)
    op_names = {op.weight_name for op in workload.ops if getattr(op, "weight_name", None)}
    file_masks = load_masks(saved["masks"]).masks
    assert op_names == set(file_masks)
    board = hwmodels.load_board("zcu102")
    dense = hwmodels.simulate(workload, board)
    sparse = hwmodels.simulate(workload, board, masks=file_masks)
    assert sparse.total_cycles <= dense.total_cycles

