"""Mask files, extraction from checkpoint files and mask statistics (no model is built here)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from codesign.masks import (FORMAT, MaskFileError, extract_masks, load_masks, mask_statistics,
                            save_masks)
from hwmodels.sparsity import BlockMask

Q0 = "bert.encoder.layer.0.attention.self.query.weight"
F0 = "bert.encoder.layer.0.intermediate.dense.weight"


def test_round_trip_keeps_grids_shapes_and_metadata(tmp_path):
    masks = {Q0: BlockMask.random((256, 1), (384, 384), 0.5, seed=1),
             F0: BlockMask.random((256, 1), (1536, 384), 0.25, seed=2)}
    path = save_masks(tmp_path / "m.safetensors", masks, {
        "source_checkpoint": "/x", "source_sha256": "ab" * 32, "method": "oneshot", "ratio": 0.5,
        "roles": {Q0: (0, "q"), F0: (0, "ffn_in")}})
    back = load_masks(path)
    assert back.masks == masks
    assert back.block_shape == (256, 1)
    meta = back.metadata
    assert meta["format"] == FORMAT and meta["block_shape"] == "256x1"
    assert meta["matrix_shapes"] == {Q0: (384, 384), F0: (1536, 384)}
    assert meta["roles"] == {Q0: (0, "q"), F0: (0, "ffn_in")}
    assert meta["method"] == "oneshot" and meta["ratio"] == 0.5
    assert meta["source_sha256"] == "ab" * 32


def test_file_stores_one_bool_grid_per_matrix_keyed_by_parameter_name(tmp_path):
    from safetensors import safe_open

    mask = BlockMask.random((3, 3), (10, 7), 0.5, seed=0)
    path = save_masks(tmp_path / "m.safetensors", {Q0: mask}, {})
    with safe_open(str(path), framework="np") as fh:
        assert list(fh.keys()) == [Q0]
        grid = fh.get_tensor(Q0)
        assert json.loads(fh.metadata()["matrix_shapes"]) == {Q0: [10, 7]}
    assert grid.dtype == np.bool_ and grid.shape == (4, 3)
    np.testing.assert_array_equal(grid, mask.grid)


def test_load_errors_are_one_line_and_name_the_file(tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(MaskFileError, match="no such mask file") as err:
        load_masks(missing)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(other))
    with pytest.raises(MaskFileError, match="expected 'codesign-block-mask/1'") as err:
        load_masks(other)
    assert str(other) in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(MaskFileError, match="not a readable safetensors") as err:
        load_masks(junk)
    assert "\n" not in str(err.value)


def test_save_refuses_mixed_block_shapes(tmp_path):
    with pytest.raises(ValueError, match="one block shape"):
        save_masks(tmp_path / "m.safetensors", {
            "a": BlockMask.dense((2, 2), (4, 4)), "b": BlockMask.dense((4, 1), (4, 4))}, {})


def _layer_names(prefix: str = "") -> dict[str, tuple[int, int]]:
    return {f"{prefix}encoder.layer.0.attention.self.query.weight": (8, 8),
            f"{prefix}encoder.layer.0.intermediate.dense.weight": (12, 8),
            f"{prefix}encoder.layer.0.output.dense.weight": (8, 12)}


def test_extraction_from_a_weights_file_finds_zero_and_partially_zero_blocks(tmp_path):
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(size=shape).astype(np.float32) + 0.5
               for name, shape in _layer_names().items()}
    q = weights["encoder.layer.0.attention.self.query.weight"]
    q[0:4, 4:8] = 0.0      # a whole 4x4 block
    q[4, 0] = 0.0          # one zero inside a kept block: partially zero
    ffn = weights["encoder.layer.0.intermediate.dense.weight"]
    ffn[8:12, :] = 0.0     # a whole block row
    weights["embeddings.word_embeddings.weight"] = np.zeros((5, 8), np.float32)  # never a mask
    path = tmp_path / "model.safetensors"
    save_file(weights, str(path))
    ex = extract_masks(path, "4x4")
    assert set(ex.masks) == set(_layer_names())  # bare BertModel names, as stored
    np.testing.assert_array_equal(ex.masks["encoder.layer.0.attention.self.query.weight"].grid,
                                  [[True, False], [True, True]])
    np.testing.assert_array_equal(ex.masks["encoder.layer.0.intermediate.dense.weight"].grid,
                                  [[True, True], [True, True], [False, False]])
    stats = ex.stats
    by_role = {m.role: m for m in stats.matrices}
    assert by_role["q"].partial_blocks == 1 and by_role["q"].kept_blocks == 3
    assert by_role["ffn_in"].row_counts == (2, 2, 0) and by_role["ffn_in"].col_counts == (2, 2)
    assert by_role["ffn_out"].density == 1.0
    total = 64 + 96 + 96
    assert stats.total_weights == total
    assert stats.kept_weights == total - 16 - 32
    assert stats.nonzero_weights == total - 16 - 32 - 1
    assert stats.compression == pytest.approx(total / (total - 49))
    assert stats.layer_density == {0: pytest.approx((total - 48) / total)}
    assert ex.metadata["source_sha256"] and ex.metadata["method"] == "extracted"


def test_extraction_pads_shapes_that_do_not_divide(tmp_path):
    w = np.ones((10, 7), np.float32)
    w[9, :] = 0.0  # the partial last block row (rows 9..9) is all zero
    name = "distilbert.transformer.layer.0.attention.q_lin.weight"
    save_file({name: w}, str(tmp_path / "w.safetensors"))
    ex = extract_masks(tmp_path / "w.safetensors", (3, 3))
    grid = ex.masks[name].grid
    assert grid.shape == (4, 3)
    assert grid[:3].all() and not grid[3].any()
    assert ex.stats.matrices[0].role == "q"
    assert ex.stats.density == pytest.approx(63 / 70)  # edge blocks counted at real size


def test_extraction_reads_pytorch_bin_files(tmp_path):
    import torch
    w = torch.ones(8, 8)
    w[:4, :4] = 0
    torch.save({"bert.encoder.layer.0.attention.self.key.weight": w}, tmp_path / "x.bin")
    ex = extract_masks(tmp_path / "x.bin", "4x4")
    assert ex.masks["bert.encoder.layer.0.attention.self.key.weight"].kept_blocks == 3


def test_extraction_reads_bfloat16_safetensors_through_torch(tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch

    name = "bert.encoder.layer.0.attention.self.key.weight"
    w = torch.ones(8, 8, dtype=torch.bfloat16)
    w[4:, :4] = 0
    save_torch({name: w}, str(tmp_path / "b.safetensors"))
    ex = extract_masks(tmp_path / "b.safetensors", "4x4")
    np.testing.assert_array_equal(ex.masks[name].grid, [[True, True], [False, True]])


def test_truncated_weights_file_is_one_mask_file_error(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({Q0: np.ones((8, 8), np.float32)}, str(path))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(MaskFileError, match="corrupt or unreadable safetensors file") as err:
        extract_masks(path, "4x4")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_extraction_errors_name_the_file(tmp_path):
    with pytest.raises(MaskFileError, match="no such checkpoint"):
        extract_masks(tmp_path / "nothing", "4x4")
    save_file({"foo.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "f.safetensors"))
    with pytest.raises(MaskFileError, match="no BERT, RoBERTa or DistilBERT") as err:
        extract_masks(tmp_path / "f.safetensors", "4x4")
    assert "f.safetensors" in str(err.value)


def test_statistics_count_edge_blocks_at_real_size():
    grid = np.array([[True, False], [False, False]])
    stats = mask_statistics({"m": BlockMask(grid, (256, 1), (384, 2))}, roles={"m": (1, "q")})
    assert stats.kept_weights == 256 and stats.total_weights == 768
    assert stats.matrices[0].block_density == 0.25
    assert stats.nonzero_weights is None and stats.partial_blocks is None
    text = stats.table()
    assert "overall: density 0.3333" in text and "L1=0.3333" in text
    json.dumps(stats.to_dict())


def test_modules_for_the_light_cli_path_do_not_import_torch():
    code = ("import sys, codesign.masks, codesign.checkpoints; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
