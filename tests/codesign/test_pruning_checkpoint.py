"""codesign.pruning.prune_checkpoint, the `codesign prune` pipeline, called directly: what it
returns is what it wrote (checkpoint, masks, prune.json), on a tiny one-shot run of MiniLM."""
from __future__ import annotations

import dataclasses
import json

import pytest

from hwmodels import BlockShape

from codesign.masks import extract_masks, load_masks
from codesign.pruning import PrunedCheckpoint, prune_checkpoint, read_per_matrix_file


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, glue_dir):
    from codesign.pruning.train import TrainConfig

    out = tmp_path_factory.mktemp("pipeline") / "one"
    train = TrainConfig(epochs=0, batch_size=8, max_seq_len=32, seed=0, threads=1)
    done = prune_checkpoint(model="minilm-l6", task="sst2", block_shape=BlockShape(16, 16),
                            ratio={"default": 0.5, "ffn_in": 0.75}, method="oneshot",
                            out_dir=out, train=train, retrain=None, glue_dir=glue_dir,
                            examples=16, eval_examples=16, progress=False)
    return out, done


def test_returns_what_it_wrote(pruned):
    out, done = pruned
    assert isinstance(done, PrunedCheckpoint)
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.task = "rte"
    assert done.checkpoint == out and (out / "model.safetensors").is_file()
    assert done.masks_path == out / "masks.safetensors" and done.info_path == out / "prune.json"
    assert (done.source, done.architecture, done.method) == ("builtin:minilm-l6", "bert",
                                                             "oneshot")
    assert (done.train_examples, done.dev_examples) == (16, 16)
    assert set(done.stage_seconds) == {"prune"} and done.devices == "cpu"
    assert set(done.dev_metrics) >= {"accuracy"} and done.headline_metric == "accuracy"
    info = json.loads(done.info_path.read_text())
    assert info["checkpoint_sha256"] == done.sha256
    assert info["block_shape"] == "16x16" and info["ratio"] == {"default": 0.5, "ffn_in": 0.75}
    assert info["dev_metrics"] == done.dev_metrics
    assert info["density"] == pytest.approx(done.stats.density)


def test_per_matrix_ratios_reach_the_masks(pruned):
    out, done = pruned
    masks = load_masks(done.masks_path)
    assert masks.metadata["method"] == "oneshot" and masks.block_shape == (16, 16)
    assert len(masks.masks) == done.n_matrices == 36  # 6 layers x (q, k, v, out, ffn in/out)
    for name, mask in masks.masks.items():
        want = 0.25 if "intermediate.dense" in name else 0.5
        if name.endswith("output.dense.weight"):  # attn_out, ffn_out: the fold (prune.json
            # "fold") also prunes the block columns fed by dead V heads / FFN neurons
            assert mask.density <= want + 0.01, name
        else:
            assert mask.density == pytest.approx(want, abs=0.01), name
    assert (done.fold["heads"], done.fold["neurons"]) == (9, 1552)  # 16x16 magnitude masks
    assert extract_masks(out, "16x16").masks == masks.masks


def test_unknown_method_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="method 'magic': use one of rgl, oneshot"):
        prune_checkpoint(model="minilm-l6", task="sst2", block_shape=BlockShape(16, 16),
                         ratio=0.5, method="magic", out_dir=tmp_path, train=None, retrain=None)


def test_per_matrix_file(tmp_path):
    path = tmp_path / "ratios.yaml"
    path.write_text("ffn_in: 0.7\n3: 0.2\n")
    assert read_per_matrix_file(path, default=0.5, what="--ratios") == {
        "ffn_in": 0.7, 3: 0.2, "default": 0.5}
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"--ratios file .*ratios.yaml: expected a mapping"):
        read_per_matrix_file(path, default=0.5, what="--ratios")
    with pytest.raises(ValueError, match=r"--lambdas file .*nope.yaml: No such file"):
        read_per_matrix_file(tmp_path / "nope.yaml", default=1e-4, what="--lambdas")
