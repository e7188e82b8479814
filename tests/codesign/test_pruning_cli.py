"""`codesign prune` and `codesign masks` end to end (tiny runs on the built-in MiniLM): files,
printed lines and one-line errors. The pipeline itself is tested in test_pruning_checkpoint.py."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from codesign.cli import main
from codesign.masks import extract_masks, load_masks

TINY = ["--examples", "16", "--batch-size", "8", "--max-seq-len", "32", "--eval-examples", "16",
        "--threads", "1", "--no-progress"]


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def pruned_rgl(tmp_path_factory, glue_dir):
    out = tmp_path_factory.mktemp("cli") / "rgl"
    result = _run(["prune", "--model", "minilm-l6", "--task", "sst2", "--block", "16x16",
                   "--ratio", "0.5", "--method", "rgl", "--out", str(out), "--glue-dir",
                   str(glue_dir), "--epochs", "1", "--retrain-epochs", "1", *TINY])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_prune_rgl_writes_checkpoint_masks_and_provenance(pruned_rgl):
    out, output = pruned_rgl
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    info = json.loads((out / "prune.json").read_text())
    # ratio 0.5, less the blocks of attn_out / ffn_out that the fold of dead heads and neurons
    # zeroed whole (codesign.pruning.fold)
    assert f"density {info['density']:.4f}" in output and info["density"] <= 0.5
    assert "dev (16 examples): accuracy" in output
    assert info["method"] == "rgl" and info["train_examples"] == 16
    assert set(info["stage_seconds"]) == {"rgl", "prune", "retrain"}
    masks = load_masks(out / "masks.safetensors")
    assert masks.metadata["method"] == "rgl" and masks.metadata["block_shape"] == "16x16"
    assert masks.metadata["source_sha256"] == info["checkpoint_sha256"]
    assert extract_masks(out, "16x16").masks == masks.masks


def test_masks_command_reports_and_writes(pruned_rgl, tmp_path):
    out, _ = pruned_rgl
    result = _run(["masks", str(out), "--block", "16x16", "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    density = json.loads((out / "prune.json").read_text())["density"]
    assert f"overall: density {density:.4f}" in result.output
    assert "per-layer density" in result.output
    assert load_masks(tmp_path / "m.safetensors").masks == load_masks(
        out / "masks.safetensors").masks
    result = _run(["masks", str(out), "--block", "32x32", "--json"])
    stats = json.loads(result.output)
    # 16x16 blocks pruned: most 32x32 blocks still hold a kept 16x16 block -> partially zero
    assert stats["block_shape"] == "32x32" and stats["partial_blocks"] > 0
    assert stats["compression"] == pytest.approx(1 / density)
    assert len(stats["matrices"]) == 36


def test_prune_oneshot_without_training(tmp_path, glue_dir):
    out = tmp_path / "one"
    result = _run(["prune", "--task", "sst2", "--block", "256x1", "--ratio", "0.3",
                   "--method", "oneshot", "--epochs", "0", "--out", str(out), "--glue-dir",
                   str(glue_dir), *TINY])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "prune.json").read_text())
    assert set(info["stage_seconds"]) == {"prune"}
    assert load_masks(out / "masks.safetensors").block_shape == (256, 1)
    lines = result.output.splitlines()
    assert lines[0] == ("pruned builtin:minilm-l6 (bert) on sst2: method oneshot, block 256x1, "
                        "ratio 0.3, 16 training examples")
    assert lines[1].startswith("stages: prune ") and lines[1].endswith("; device cpu")
    assert lines[-1] == (f"wrote {out} (sha256 {info['checkpoint_sha256'][:16]}...), "
                         f"{out / 'masks.safetensors'}, {out / 'prune.json'}")


@pytest.mark.parametrize("args,needle", [
    (["prune", "--task", "sst2", "--block", "16x16", "--ratio", "0.5", "--model",
      "/no/such/folder", "--out", "x"], "/no/such/folder: no such checkpoint folder"),
    (["prune", "--task", "sst2", "--block", "sixteen", "--ratio", "0.5", "--out", "x"],
     "--block: 'sixteen' is not a block shape"),
    (["prune", "--task", "sst9", "--block", "16x16", "--ratio", "0.5", "--out", "x"],
     "unknown GLUE task 'sst9'"),
    (["prune", "--task", "sst2", "--block", "16x16", "--ratio", "1.5", "--out", "x"],
     "--ratio 1.5"),
    (["masks", "/no/such/ckpt", "--block", "16x16"], "/no/such/ckpt: no such checkpoint"),
])
def test_cli_errors_are_one_line(args, needle):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0]
