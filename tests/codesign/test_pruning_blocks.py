"""Block norms, percentile masks and grid expansion (pure tensor logic, no model)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codesign.pruning import per_matrix_value
from codesign.pruning.blocks import block_norms, expand, grid_shape, prune_mask


def _brute_norms(w: np.ndarray, bh: int, bw: int) -> np.ndarray:
    rows, cols = math.ceil(w.shape[0] / bh), math.ceil(w.shape[1] / bw)
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.linalg.norm(w[i * bh:(i + 1) * bh, j * bw:(j + 1) * bw])
    return out


@pytest.mark.parametrize("shape,block", [((12, 8), (4, 4)), ((10, 7), (3, 3)), ((384, 5), (256, 1)),
                                         ((5, 9), (1, 4)), ((6, 6), (6, 6)), ((3, 3), (8, 8))])
def test_block_norms_match_brute_force_with_zero_padding(shape, block):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    got = block_norms(w, block).numpy()
    assert got.shape == grid_shape(shape, block) == (math.ceil(shape[0] / block[0]),
                                                     math.ceil(shape[1] / block[1]))
    np.testing.assert_allclose(got, _brute_norms(w.numpy(), *block), rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 0.77, 1.0])
def test_prune_mask_prunes_exactly_the_smallest_blocks(ratio):
    norms = torch.rand(7, 9, generator=torch.Generator().manual_seed(3))
    keep = prune_mask(norms, ratio)
    n_pruned = int((~keep).sum())
    assert n_pruned == round(ratio * norms.numel())
    if 0 < n_pruned < norms.numel():
        assert norms[~keep].max() <= norms[keep].min()


def test_prune_mask_ties_keep_the_count_exact():
    keep = prune_mask(torch.zeros(4, 4), 0.25)
    assert int((~keep).sum()) == 4
    assert not keep.flatten()[:4].any()  # ties broken row-major


def test_prune_mask_rejects_bad_ratio():
    with pytest.raises(ValueError, match="prune ratio"):
        prune_mask(torch.ones(2, 2), 1.5)


def test_expand_crops_the_padding():
    grid = torch.tensor([[True, False], [False, True]])
    dense = expand(grid, (3, 3), (5, 4))
    assert dense.shape == (5, 4)
    assert dense[:3, :3].all() and not dense[:3, 3:].any()
    assert not dense[3:, :3].any() and dense[3:, 3:].all()
    with pytest.raises(ValueError, match="expected"):
        expand(grid, (3, 3), (7, 4))


def test_per_matrix_value_precedence():
    spec = {"default": 0.5, "ffn_in": 0.6, 2: 0.7, "3": 0.8, "x.weight": 0.9}
    assert per_matrix_value(spec, "a", 0, "q") == 0.5
    assert per_matrix_value(spec, "a", 0, "ffn_in") == 0.6
    assert per_matrix_value(spec, "a", 2, "ffn_in") == 0.7  # layer beats role
    assert per_matrix_value(spec, "a", 3, "q") == 0.8  # YAML may give layers as strings
    assert per_matrix_value(spec, "x.weight", 2, "q") == 0.9  # name beats layer
    assert per_matrix_value(0.3, "a", 0, "q") == 0.3
    with pytest.raises(ValueError, match="no entry for a"):
        per_matrix_value({"q": 0.1}, "a", 0, "k")
