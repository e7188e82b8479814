"""The shipped precision study (studies/precision_zcu102.yaml): it validates, a tiny variant runs
end to end with every point's accuracy measured at its accelerator's precision, and the report
says which precision x block x compression combinations are on the front and how the 4-bit
dense design fares against the 8-bit 2x-pruned one. Also: the report lines on synthetic points
(gold values), and the study key mac_impl."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "precision_zcu102.yaml"
RECIPE = {"base": "quick", "eval_examples": 48, "dense_examples": 96, "batch_size": 8,
          "quant_calib_examples": 32}


def test_the_shipped_study_sweeps_precision_at_the_hardware_precision(glue_dir):
    from codesign.study import load_study
    from codesign.sweep import DesignSpace

    study = load_study(STUDY)
    assert study.accuracy.precision == "hardware"
    assert study.hardware.swept()["precision"] == ["w8a8", "w4a8"]
    space = DesignSpace.of(study)
    # 2 precisions x 2 sparse strategies; 3 blocks x 2 ratios + 1 dense per accelerator
    assert len(space.choices) == 4 and len(space.points()) == 2 * (2 * 3 * 2 + 1)


@pytest.fixture(scope="module")
def tiny_run(glue_dir, tmp_path_factory):
    """The study cut to seq 32, one 32x32 array, 16x16 blocks at 2x, magnitude + oneshot, the
    quick recipe: 2 dense + 2 pruned measurements (one each per precision)."""
    from codesign.accuracy import AccuracyCache
    from codesign.study import StageSpec, load_study
    from codesign.sweep import run_sweep

    base = load_study(STUDY)
    study = base.model_copy(update={
        "model": base.model.model_copy(update={"seq_len": 32}),
        "pruning": base.pruning.model_copy(update={"method": "magnitude",
                                                   "block_shapes": ["16x16"],
                                                   "compression": [2.0]}),
        "accuracy": base.accuracy.model_copy(update={
            "recipe": RECIPE, "stages": [StageSpec(fidelity="oneshot")]}),
        "hardware": base.hardware.model_copy(update={"sparse_strategy": ["tile-skip"]}),
        "constraints": base.constraints.model_copy(update={"max_accuracy_drop": 50.0})})
    tmp = tmp_path_factory.mktemp("precision")
    result = run_sweep(study, tmp / "out", cache=AccuracyCache(tmp / "cache"))
    return study, result


def test_the_tiny_study_measures_each_point_at_its_precision(tiny_run):
    _, result = tiny_run
    pts = result.points
    assert result.n_failed == 0 and len(pts) == 4
    assert result.n_accuracy_measured == 4  # (dense, 16x16 2x) x (w8a8, w4a8)
    assert list(pts["accuracy_precision"]) == list(pts["precision"])
    assert set(pts["precision"]) == {"w8a8", "w4a8"}
    # w4a8 halves the weight bytes: less DRAM traffic, never slower on the same array
    for block in ("dense", "16x16"):
        rows = pts.loc[pts["block_shape"] == block].set_index("precision")
        assert rows.loc["w4a8", "latency_ms"] <= rows.loc["w8a8", "latency_ms"]


def test_the_report_names_the_combinations_on_the_front(tiny_run):
    from codesign.report import render_report

    study, result = tiny_run
    text = render_report(result.points, study.to_plain())
    line = next(x for x in text.splitlines()
                if x.startswith("- Precision x block shape x compression on the Pareto set: "))
    named = line.split(": ", 1)[1]
    for combo in ("w8a8 dense", "w4a8 dense", "w8a8 16x16 2x", "w4a8 16x16 2x"):
        assert combo in named
    assert "- Fastest 4-bit-weight dense design meeting the constraints: " in text
    assert "- Fastest 8-bit-weight design pruned 2x meeting them: " in text
    assert "- w4a8 dense is " in text and " than w8a8 16x16 2x" in text


def _synthetic() -> pd.DataFrame:
    """Four designs with round figures: 4-bit dense, 8-bit dense, 8-bit 2x and 8-bit 4x."""
    return pd.DataFrame({
        "precision": ["w4a8", "w8a8", "w8a8", "w8a8"],
        "block_shape": ["dense", "dense", "16x16", "16x16"],
        "compression": [1.0, 1.0, 2.0, 4.0], "prune_ratio": [0.0, 0.0, 0.5, 0.75],
        "latency_ms": [2.0, 4.0, 3.0, 1.0], "energy_mj": [1.0, 2.0, 2.0, 0.5],
        "accuracy": [0.85, 0.86, 0.84, 0.70], "accuracy_low": [0.82, 0.83, 0.81, 0.66],
        "accuracy_high": [0.88, 0.89, 0.87, 0.74]})


def test_dense_versus_pruned_gold_values():
    from codesign.report_precision import dense_versus_pruned_lines, precision_lines

    pts = _synthetic()
    feas = np.ones(len(pts), dtype=bool)
    lines = dense_versus_pruned_lines(pts, feas, lambda row, what: f"{what}: {row.name}")
    # the 4-bit dense (row 0) against the 8-bit 2x (row 2): 3 / 2 = 1.5x faster, 1 / 2 energy
    assert lines == ["Fastest 4-bit-weight dense design meeting the constraints: 0",
                     "Fastest 8-bit-weight design pruned 2x meeting them: 2",
                     "w4a8 dense is 1.5x faster than w8a8 16x16 2x at 0.5x its energy, at "
                     "equal accuracy (95% intervals overlap)."]
    # intervals apart: the more accurate one is named
    apart = pts.assign(accuracy_low=[0.90, 0.83, 0.81, 0.66], accuracy_high=[0.95, 0.89, 0.87,
                                                                             0.74],
                       accuracy=[0.92, 0.86, 0.84, 0.70])
    assert dense_versus_pruned_lines(apart, feas, lambda r, w: "")[-1].endswith(
        "but w4a8 dense is more accurate (intervals do not overlap).")
    # no 8-bit pruned design meets the constraints: the fastest 8-bit 2x one is still named
    dense_only = np.array([True, True, False, False])
    assert dense_versus_pruned_lines(pts, dense_only, lambda row, what: f"{what}: {row.name}")[
        1] == "Fastest 8-bit-weight design pruned 2x (none meets the constraints): 2"
    # front: rows 0 and 3 (fastest / frugal) and 1 (most accurate)
    in_set = np.array([True, True, False, True])
    out = precision_lines(pts, pts, in_set, feas, lambda r, w: "")
    assert out[0] == ("Precision x block shape x compression on the Pareto set: w4a8 dense (1), "
                      "w8a8 dense (1), w8a8 16x16 4x (1); not on it: w8a8 16x16 2x.")
    # one precision only: no precision lines
    assert precision_lines(pts.assign(precision="w8a8"), pts, in_set, feas,
                           lambda r, w: "") == []


def test_the_study_key_mac_impl_sweeps_the_mac_implementation(glue_dir):
    from codesign.study import accelerator_choices, load_study, resolve

    base = load_study(STUDY)
    study = base.model_copy(update={"hardware": base.hardware.model_copy(
        update={"precision": "w4a8", "sparse_strategy": ["tile-skip"],
                "mac_impl": ["dsp", "lut"]})})
    choices = accelerator_choices(study)
    assert [c.mac_impl for c in choices] == ["dsp", "lut"]
    accs = [resolve(study, c).accelerator for c in choices]
    assert [a.mac_impl for a in accs] == ["dsp", "lut"]
    fits = [resolve(study, c).fit for c in choices]
    assert fits[1].resources["dsp"]["used"] == 32 < fits[0].resources["dsp"]["used"]
    # a study without the key keeps its point identities (no mac_impl in the pairs)
    assert all(k != "mac_impl" for c in accelerator_choices(base) for k, _ in c.pairs())
