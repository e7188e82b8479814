"""Loading checkpoints offline, parameter-name layouts, provenance hashes and one-line errors."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from codesign.checkpoints import (STRUCTURES, CheckpointError, builtin_path, checkpoint_sha256,
                                  load_model, open_safetensors, structure_for)
from codesign.errors import first_line
from hwmodels.workload import ENCODER_LAYOUTS, default_weight_name

ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm-l6", task="sst2")


def test_builtin_minilm_loads_offline_with_a_fresh_head(minilm):
    cfg = minilm.model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == \
        ("bert", 6, 384, 1536)
    assert cfg.num_labels == 2 and minilm.source == "builtin:minilm-l6"
    assert minilm.structure.architecture == "bert" and minilm.structure.prefix == "bert."
    weights = builtin_path("minilm-l6") / "model.safetensors"
    assert minilm.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert checkpoint_sha256(weights) == minilm.sha256


def test_structure_names_every_prunable_matrix_of_minilm(minilm):
    found = minilm.structure.prunable(minilm.model)
    assert len(found) == 6 * 6
    params = dict(minilm.model.named_parameters())
    for name, layer, role in found:
        assert minilm.structure.weight_name(layer, role) == name
        assert params[name].ndim == 2
    q3 = "bert.encoder.layer.3.attention.self.query.weight"
    assert minilm.structure.weight_name(3, "q") == q3
    assert minilm.structure.weight_name(0, "ffn_out") == "bert.encoder.layer.0.output.dense.weight"
    assert tuple(params[minilm.structure.weight_name(0, "ffn_in")].shape) == (1536, 384)
    heads = minilm.structure.prunable(minilm.model, include_heads=True)
    assert [r for _, _, r in heads[-2:]] == ["pooler", "classifier"]
    assert not any("embeddings" in n for n, _, _ in heads)


@pytest.mark.parametrize("model_type,expected", [
    ("bert", "bert.encoder.layer.2.attention.output.dense.weight"),
    ("roberta", "roberta.encoder.layer.2.attention.output.dense.weight"),
    ("distilbert", "distilbert.transformer.layer.2.attention.out_lin.weight")])
def test_structure_for_config_dicts_and_round_trip(model_type, expected):
    structure = structure_for({"model_type": model_type})
    assert structure.weight_name(2, "attn_out") == expected
    for role in ROLES:
        name = structure.weight_name(5, role)
        assert structure.parse(name) == (5, role)
        bare = name[len(structure.prefix):]
        assert structure.parse(bare) == (5, role)  # a bare base-model checkpoint
    assert structure.detect_prefix([expected[len(structure.prefix):]]).prefix == ""


@pytest.mark.parametrize("model_type", sorted(STRUCTURES))
def test_structures_and_the_hardware_workload_name_weights_alike(model_type):
    structure = STRUCTURES[model_type]
    assert structure.roles == ROLES
    for role in ROLES:
        name = structure.weight_name(7, role)
        assert name == ENCODER_LAYOUTS[model_type].weight_name(7, role)
        assert name == default_weight_name(model_type)(7, role)


def test_first_line_keeps_one_short_line():
    assert first_line(ValueError("bad header\n  at byte 12")) == "bad header"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("  \n")) == "OSError"
    assert len(first_line(ValueError("x" * 1000))) == 300


def test_open_safetensors_turns_failures_into_one_line(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": np.ones((4, 4), np.float32)}, str(path))
    with open_safetensors(path) as handle:
        assert list(handle.keys()) == ["w"]
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CheckpointError) as err:
        with open_safetensors(path, fix="; re-save it"):
            pass
    text = str(err.value)
    assert text.startswith(f"{path}: corrupt or unreadable safetensors file (")
    assert text.endswith("); re-save it") and "\n" not in text

    class Custom(ValueError):
        pass

    path.write_bytes(b"")
    with pytest.raises(Custom, match="not a mask file"):
        with open_safetensors(path, error=Custom, problem="not a mask file"):
            pass
    save_file({"w": np.ones((4, 4), np.float32)}, str(path))
    with pytest.raises(TypeError, match="passes"):
        with open_safetensors(path, passthrough=(TypeError,)):
            raise TypeError("passes through")


def test_structure_refuses_other_architectures():
    with pytest.raises(CheckpointError, match="'gpt2' is not a supported BERT-family"):
        structure_for({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="unknown role"):
        STRUCTURES["bert"].weight_name(0, "gate")


def _copy_minilm(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(builtin_path("minilm-l6"), folder)
    return folder


def _assert_one_line(err, *needles):
    text = str(err.value)
    assert "\n" not in text
    for needle in needles:
        assert str(needle) in text


def test_bad_path_is_one_line(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "missing-folder")
    _assert_one_line(err, "missing-folder", "no such checkpoint folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "empty")
    _assert_one_line(err, "config.json", "not a Hugging Face checkpoint folder")


def test_non_bert_architecture_is_one_line(tmp_path):
    folder = _copy_minilm(tmp_path)
    config = (folder / "config.json").read_text().replace('"model_type": "bert"',
                                                          '"model_type": "gpt2"')
    (folder / "config.json").write_text(config)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _assert_one_line(err, folder / "config.json", "'gpt2' is not a supported BERT-family")


def test_corrupt_weights_file_is_one_line_naming_it(tmp_path):
    folder = _copy_minilm(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])  # truncated download
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _assert_one_line(err, weights, "corrupt or unreadable")
    weights.unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _assert_one_line(err, "no weights file")


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    folder = _copy_minilm(tmp_path)
    # a config claiming a bigger FFN than the weights hold: encoder weights would be re-initialised
    config = (folder / "config.json").read_text().replace('"intermediate_size": 1536',
                                                          '"intermediate_size": 1024')
    (folder / "config.json").write_text(config)
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    _assert_one_line(err, "model.safetensors", "encoder weights missing or mis-shaped")


def test_local_folder_hash_is_the_weights_file_hash(tmp_path):
    folder = _copy_minilm(tmp_path)
    expected = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert checkpoint_sha256(folder) == expected
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert checkpoint_sha256(folder) == expected  # weights, not config whitespace
