"""RoBERTa and DistilBERT parameter layouts on tiny randomly initialised models.

Only the naming and the mask plumbing are under test here (load -> prune -> save -> extract ->
mask file keys): the weights are random, so nothing about accuracy is claimed. The tokenizer is
MiniLM's WordPiece tokenizer copied next to the weights, which is enough to run the models.
"""
from __future__ import annotations

import shutil

import pytest
import torch

from codesign.checkpoints import builtin_path, load_model
from codesign.masks import extract_masks, load_masks
from codesign.pruning import oneshot_prune, save_pruned

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")


def _tiny(model_type):
    from transformers import DistilBertConfig, RobertaConfig

    if model_type == "roberta":
        return RobertaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                             num_attention_heads=2, intermediate_size=48, num_labels=2,
                             max_position_embeddings=80, pad_token_id=0)
    return DistilBertConfig(vocab_size=30522, dim=32, n_layers=3, n_heads=2, hidden_dim=48,
                            num_labels=2, max_position_embeddings=80)


@pytest.fixture(params=["roberta", "distilbert"])
def tiny_folder(request, tmp_path):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(_tiny(request.param))
    folder = tmp_path / request.param
    model.save_pretrained(str(folder))
    for name in TOKENIZER_FILES:
        shutil.copy(builtin_path("minilm-l6") / name, folder / name)
    return request.param, folder


def test_layout_names_prune_save_and_extract(tiny_folder, tmp_path):
    model_type, folder = tiny_folder
    loaded = load_model(folder)
    assert loaded.structure.architecture == model_type
    found = loaded.structure.prunable(loaded.model)
    assert len(found) == 3 * 6
    assert {role for _, _, role in found} == {"q", "k", "v", "attn_out", "ffn_in", "ffn_out"}
    params = dict(loaded.model.named_parameters())
    prefix = {"roberta": "roberta.encoder.layer.",
              "distilbert": "distilbert.transformer.layer."}[model_type]
    for name, layer, role in found:
        assert name.startswith(f"{prefix}{layer}.") and name in params
    ffn_in = loaded.structure.weight_name(1, "ffn_in")
    assert tuple(params[ffn_in].shape) == (48, 32)

    masks = oneshot_prune(loaded.model, loaded.structure, (8, 4), 0.5, include_heads=True)
    assert {n for n, _, _ in loaded.structure.prunable(loaded.model, include_heads=True)} \
        == set(masks)
    saved = save_pruned(tmp_path / "out", loaded.model, loaded.tokenizer, loaded.structure, masks,
                        metadata={"method": "oneshot", "ratio": 0.5})
    file_set = load_masks(saved["masks"])
    assert file_set.masks == masks
    assert file_set.metadata["roles"][ffn_in] == (1, "ffn_in")
    extracted = extract_masks(saved["checkpoint"], "8x4", include_heads=True)
    assert extracted.masks == masks
    # the pruned model reloads and runs
    again = load_model(saved["checkpoint"])
    batch = again.tokenizer(["one sentence", "and another"], padding=True, return_tensors="pt")
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        assert torch.isfinite(again.model(**batch).logits).all()
