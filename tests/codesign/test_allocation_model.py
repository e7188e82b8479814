"""The model side of latency-aware allocation on the real all-MiniLM-L6-v2 weights (a 2-layer
slice, 48 SST-2 training sentences at seq 32): saliency without pruning, the calibrated re-fit
for given masks (bit-identical to calibrate_prune's on its own masks), the whole
latency_aware_prune, and the CLI's one-line errors."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from click.testing import CliRunner

import hwmodels
from hwmodels.costs import build_costs
from codesign.cli import main
from codesign.glue import load_split
from codesign.pruning import calibrate as cal
from codesign.pruning.allocation import DEFAULT_MIN_DENSITY, default_min_density
from codesign.pruning.latency_aware import latency_aware_prune
from codesign.pruning.blocks import block_norms, prune_mask
from codesign.workload import encoder_workload

from cs_helpers import minilm_slice


@pytest.fixture(scope="module")
def minilm2():
    return minilm_slice(2)


@pytest.fixture(scope="module")
def calibration(minilm2, glue_dir):
    split = load_split("sst2", "train", glue_dir=glue_dir, limit=48, seed=3)
    return cal.tokenise_calibration(minilm2[0].tokenizer, split, max_seq_len=32, batch_size=16)


def _copy(minilm2):
    loaded, original = minilm2
    model = copy.deepcopy(loaded.model)
    model.load_state_dict(original)
    return model


def test_saliency_without_pruning(minilm2, calibration):
    loaded, original = minilm2
    model = _copy(minilm2)
    norm = cal.block_saliency(model, loaded.structure, block_shape=(16, 16),
                              calibration=calibration, saliency="norm", threads=1)
    assert len(norm.scores) == 12 and norm.tokens > 0
    for name, grid in norm.scores.items():
        assert torch.equal(torch.from_numpy(grid), block_norms(original[name], (16, 16)).double())
        assert norm.energy[name] > 0
    obs = cal.block_saliency(model, loaded.structure, block_shape=(16, 16),
                             calibration=calibration, saliency="obs", threads=1)
    for name, p in model.named_parameters():
        assert torch.equal(p, original[name])  # nothing changed
    pruned = cal.calibrate_prune(_copy(minilm2), loaded.structure, block_shape=(16, 16),
                                 ratio=0.5, calibration=calibration, saliency="obs", threads=1)
    for role in ("query", "key", "value"):  # layer 0's inputs are dense in both
        name = f"bert.encoder.layer.0.attention.self.{role}.weight"
        keep = prune_mask(torch.from_numpy(obs.scores[name]), 0.5).numpy()
        assert (keep == pruned.masks[name].grid).all(), name


def test_refit_for_given_masks_is_calibrate_prune_bit_for_bit(minilm2, calibration):
    loaded, _ = minilm2
    a = _copy(minilm2)
    chosen = cal.calibrate_prune(a, loaded.structure, block_shape=(16, 16), ratio=0.5,
                                 calibration=calibration, saliency="obs", threads=1)
    b = _copy(minilm2)
    given = cal.calibrate_masks(b, loaded.structure, masks=chosen.masks,
                                calibration=calibration, threads=1)
    assert given.masks == chosen.masks and given.fits == chosen.fits
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(ValueError, match="none for 1 prunable"):
        cal.calibrate_masks(b, loaded.structure, calibration=calibration, masks={
            k: v for k, v in list(chosen.masks.items())[1:]})


@pytest.mark.parametrize("saliency", ["fisher", "obs"])
def test_latency_aware_prune_meets_its_target(minilm2, calibration, saliency):
    loaded, _ = minilm2
    model = _copy(minilm2)
    names = [n for n, _, _ in loaded.structure.prunable(model)]
    wl = encoder_workload(model.config.to_dict(), 128, 1, mask_names=names)
    acc = hwmodels.load_board("zcu102")
    table = build_costs(wl, acc, "16x16")
    done = latency_aware_prune(model, loaded.structure, table=table, calibration=calibration,
                               speedup=1.5, saliency=saliency, threads=1)
    a = done.allocation
    assert hwmodels.simulate(wl, acc, a.masks).latency_ms == a.latency_ms
    assert a.latency_ms <= hwmodels.simulate(wl, acc).latency_ms / 1.5
    # fisher scores are used as they are, with no floor; obs relative, with the 0.25 floor
    assert done.importance == ("raw" if saliency == "fisher" else "relative")
    assert default_min_density(saliency) == (0.0 if saliency == "fisher" else DEFAULT_MIN_DENSITY)
    for mask in a.masks.values():  # the default per-matrix floor holds
        assert mask.grid.sum() >= math.ceil(default_min_density(saliency) * mask.grid.size)
    params = dict(model.named_parameters())
    for name, mask in a.masks.items():
        element = torch.as_tensor(mask.to_dense())
        assert (params[name][~element] == 0).all(), name
    for f in done.fit.fits:  # the re-fit never worsens a matrix (beyond float rounding)
        assert f.error_fitted <= f.error_masked + 1e-9 * f.target_energy, f.name
    pruned = [f for f in done.fit.fits if not a.masks[f.name].grid.all()]
    assert pruned and all(f.error_fitted < f.error_masked for f in pruned)
    assert set(done.seconds) == {"saliency", "allocation", "refit"}


@pytest.mark.parametrize("args,message", [
    (["--method", "oneshot", "--speedup", "2"], "need --method calibrated"),
    (["--method", "calibrated"], "give --ratio, or --latency-ms"),
    (["--method", "calibrated", "--speedup", "2", "--latency-ms", "3"], "one target"),
    (["--method", "calibrated", "--speedup", "2", "--set", "oops"], "KEY=VALUE"),
    (["--method", "calibrated", "--speedup", "0.5"], "must be >= 1")])
def test_cli_errors_are_one_line(tmp_path, args, message):
    res = CliRunner().invoke(main, ["prune", "--task", "sst2", "--block", "16x16", "--out",
                                    str(tmp_path / "o"), *args])
    assert res.exit_code != 0 and message in res.output
    assert len(res.output.strip().splitlines()) == 1
