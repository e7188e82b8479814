"""accuracy.seeds: a study key that measures every accuracy once per training seed.

The schema's rules (one-line errors naming the file and key), the pure aggregation of per-seed
results (codesign.sweep.seeds.aggregate_seeds: closed-form means, envelope, standard deviation),
the report's header line, and one small study end to end (one block shape, one ratio, one PE
array, oneshot then retrain of the front, quick recipe): first without seeds (its point ids
pinned to those the code wrote before seeds existed), then with seeds [0, 1] on the same cache
(seed 0 is the recipe's own, so its measurements are served and only seed 1 is measured, on a
pool worker: an interrupted seeded study resumes the same way), then re-runs in the main process
that measure nothing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"

STUDY = """\
name: {name}
model: {{name: minilm-l6, seq_len: 32, batch: 1}}
tasks: [sst2]
pruning: {{method: magnitude, block_shapes: [16x16], compression: [2]}}
accuracy:
  recipe: {recipe}
  stages:
    - fidelity: oneshot
    - {{fidelity: retrain, promote: front, max_configs: 1}}
{seeds}hardware: {{board: zcu102, pe_array: [16x16], dataflow: ws, sparse_strategy: tile-skip}}
objectives: [{{latency_ms: min}}, {{accuracy: max}}]
constraints: {{max_accuracy_drop: 50, fits_board: true}}
"""
#: the quick recipe cut further (retraining from the magnitude masks, no held-out check), so two
#: seeds of three measurements each take about as long as the tiny study's one
QUICK = ("{base: quick, eval_examples: 32, dense_examples: 32, retrain_examples: 32, "
         "retrain_start: magnitude, recovery_holdout: 0}")
#: the point ids of STUDY without seeds, as the code before accuracy.seeds existed computes them
#: (commit 79c9132: dense baseline, then 16x16 at ratio 0.5)
UNSEEDED_IDS = ["827d52cba59f96ce", "728074e5b0cb1e8b"]
#: context_hash and point ids of studies/tiny.yaml before accuracy.seeds existed (79c9132)
TINY_CONTEXT = "38759749a91a8f97"
TINY_IDS = ['1c85ceb210ecc00e', '4dc4aaf18d7d4021', '4dd535eb477f97cf', '521ffdc8b206649f',
            '9e0f992971eda33f', 'cb00210acfd81db3', 'dfa1e30cc286124e', 'ea037c4802afe691',
            'eb6ae32e964b9822', 'f5a62eacb5c42e0d']


def _write(tmp_path: Path, *, seeds: str | None, recipe: str = QUICK, name: str = "seeds",
           extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    lines = "" if seeds is None else f"  seeds: {seeds}\n"
    path.write_text(STUDY.format(name=name, recipe=recipe, seeds=lines + extra))
    return path


# --- schema ----------------------------------------------------------------------------------
def test_seeds_list_is_read_and_written(tmp_path):
    from codesign.study import load_study

    study = load_study(_write(tmp_path, seeds="[0, 1, 2]"), check_fit=False)
    assert study.accuracy.seeds == [0, 1, 2]
    assert study.to_plain()["accuracy"]["seeds"] == [0, 1, 2]


def test_without_seeds_everything_is_as_before():
    """No seeds: no seeds key in study.yaml, the same store context and point ids as before."""
    from codesign.study import load_study
    from codesign.sweep import DesignSpace, context_hash

    study = load_study(TINY)
    assert study.accuracy.seeds is None
    assert "seeds" not in study.to_plain()["accuracy"]
    assert context_hash(study) == TINY_CONTEXT
    assert sorted(p.point_id for p in DesignSpace.of(study).points()) == TINY_IDS


@pytest.mark.parametrize("seeds, extra, recipe, words", [
    ("[0, 1, 0]", "", QUICK, "seed 0 is listed twice"),
    ("[0, -1]", "", QUICK, "-1 is not a seed"),
    ("[0, true]", "", QUICK, "True is not a seed"),
    ("[0, 1.5]", "", QUICK, "1.5 is not a seed"),
    ("[]", "", QUICK, "is not a list of seeds"),
    ("3", "", QUICK, "3 is not a list of seeds"),
    ("[0, 1]", "", "{base: quick, seed: 3}", "drop seed from the recipe"),
    ("[0, 1]", "  measure: false\n", QUICK, "accuracy.measure is false"),
])
def test_bad_seeds_are_one_line_errors(tmp_path, seeds, extra, recipe, words):
    from codesign.study import StudyError, load_study

    path = _write(tmp_path, seeds=seeds, recipe=recipe, extra=extra)
    with pytest.raises(StudyError) as info:
        load_study(path, check_fit=False)
    text = str(info.value)
    assert "\n" not in text and str(path) in text, text
    assert "accuracy.seeds" in text and words in text, text


# --- the aggregation --------------------------------------------------------------------------
def _result(acc, dense, low, high, dense_low, dense_high, key, seconds):
    from codesign.sweep import AccuracyResult

    return AccuracyResult(acc, "accuracy", dense, "oneshot", "measured", f"/masks/{key}",
                          {"key": key, "seconds": seconds, "fidelity": "oneshot"}, low=low,
                          high=high, dense_low=dense_low, dense_high=dense_high,
                          precision="fp32")


def test_aggregate_two_seeds_closed_form():
    from codesign.sweep.seeds import ENVELOPE, aggregate_seeds

    r3 = _result(0.75, 0.875, 0.5, 0.875, 0.75, 1.0, "k3", 1.0)
    r7 = _result(0.5, 0.625, 0.25, 0.625, 0.5, 0.75, "k7", 2.0)
    out = aggregate_seeds([r3, r7], [3, 7])
    assert out.accuracy == 0.625 and out.dense == 0.75  # means (exact in binary)
    assert (out.low, out.high) == (0.25, 0.875)  # lowest low, highest high
    assert (out.dense_low, out.dense_high) == (0.5, 1.0)
    assert out.seeds == 2
    assert out.std == pytest.approx(0.125 * math.sqrt(2.0), rel=1e-15)  # |0.75-0.5| / sqrt 2
    # the drop is the mean of the per-seed drops: (0.125 + 0.125) / 2
    assert out.dense - out.accuracy == 0.125
    # metric, fidelity, precision and the mask file are the first seed's
    assert out.masks_path == "/masks/k3" and out.metric == "accuracy" and out.precision == "fp32"
    prov = out.provenance
    assert prov["seeds"] == [3, 7] and prov["seed_keys"] == ["k3", "k7"]
    assert prov["seed_accuracy"] == [0.75, 0.5] and prov["seed_dense"] == [0.875, 0.625]
    assert prov["seconds"] == 3.0 and prov["masks_seed"] == 3 and prov["interval"] == ENVELOPE


def test_aggregate_three_seeds_and_one():
    from codesign.sweep.seeds import aggregate_seeds

    rs = [_result(a, 1.0, a - 0.125, a + 0.125, 0.875, 1.0, f"k{i}", 0.5)
          for i, a in enumerate((0.5, 0.75, 1.0))]
    out = aggregate_seeds(rs, [0, 1, 2])
    assert out.accuracy == 0.75 and out.seeds == 3
    assert out.std == pytest.approx(0.25, rel=1e-15)  # sqrt((0.0625 + 0 + 0.0625) / 2)
    assert (out.low, out.high) == (0.375, 1.125)
    one = aggregate_seeds(rs[:1], [5])
    assert one.accuracy == 0.5 and one.seeds == 1 and math.isnan(one.std)
    assert (one.low, one.high) == (0.375, 0.625)


def test_aggregate_unknown_interval_and_bad_counts():
    from codesign.sweep.seeds import aggregate_seeds

    known = _result(0.5, 1.0, 0.25, 0.75, 0.875, 1.0, "a", 0.0)
    unknown = _result(0.75, 1.0, math.nan, math.nan, 0.875, 1.0, "b", 0.0)
    out = aggregate_seeds([known, unknown], [0, 1])
    assert out.accuracy == 0.625 and math.isnan(out.low) and math.isnan(out.high)
    assert (out.dense_low, out.dense_high) == (0.875, 1.0)
    with pytest.raises(ValueError, match="one result per seed"):
        aggregate_seeds([known], [0, 1])
    with pytest.raises(ValueError, match="one result per seed"):
        aggregate_seeds([], [])


def test_report_header_names_the_seeds():
    from codesign.report_noise import header_lines

    base = {"accuracy": [0.5], "accuracy_low": [0.25], "accuracy_high": [0.75]}
    assert header_lines(pd.DataFrame(base)) == [
        "- Accuracy intervals: 95% percentile bootstrap over the dev examples, for 1 of the 1 "
        "points with an accuracy; designs whose intervals overlap are indistinguishable at this "
        "dev-set size."]
    seeded = header_lines(pd.DataFrame({**base, "accuracy_seeds": [3]}))
    assert len(seeded) == 1
    assert seeded[0].startswith("- Accuracy: means over 3 training seeds; intervals: each spans "
                                "the seeds' 95% percentile bootstrap intervals")
    assert seeded[0].endswith("at this dev-set size and these seeds.")


# --- end to end -------------------------------------------------------------------------------
def _records(cache) -> dict[tuple, list]:
    """Cache records by (block, ratio, fidelity), each list sorted by seed."""
    out: dict[tuple, list] = {}
    for rec in cache.records():
        out.setdefault((rec.block_shape, rec.ratio, rec.fidelity), []).append(rec)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in out.items()}


def _csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "points.csv")


@pytest.mark.slow
def test_seeded_study_end_to_end(tmp_path, glue_dir):
    from codesign.accuracy import AccuracyCache
    from codesign.study import load_study
    from codesign.sweep import run_sweep

    cache = AccuracyCache(tmp_path / "cache")
    plain = load_study(_write(tmp_path, seeds=None))
    seeded = load_study(_write(tmp_path, seeds="[0, 1]"))

    # without seeds: the point ids of before, no seed columns, one record per measurement
    before = run_sweep(plain, tmp_path / "plain", workers=1, cache=cache)
    old = _csv(tmp_path / "plain")
    assert list(old["point_id"]) == UNSEEDED_IDS
    assert not {"accuracy_seeds", "accuracy_seed_std"} & set(old.columns)
    assert before.n_accuracy_measured == 3  # the dense model, oneshot, then retrain
    assert {k: [r.seed for r in v] for k, v in _records(cache).items()} == {
        (None, 0.0, "oneshot"): [0], ("16x16", 0.5, "oneshot"): [0], ("16x16", 0.5, "retrain"): [0]}

    # with seeds [0, 1]: seed 0's records are served, seed 1's measured on a pool worker (its
    # dense model fine-tuned in the main process); promotion per seed
    run = run_sweep(seeded, tmp_path / "seeded", workers=2, cache=cache, measure_on="workers")
    assert run.n_new == 3 and run.n_failed == 0
    records = _records(cache)
    assert {k: [r.seed for r in v] for k, v in records.items()} == {
        (None, 0.0, "oneshot"): [0, 1], ("16x16", 0.5, "oneshot"): [0, 1],
        ("16x16", 0.5, "retrain"): [0, 1]}
    assert len({r.key for v in records.values() for r in v}) == 6
    df = _csv(tmp_path / "seeded")
    cut = list(old.columns).index("accuracy_high") + 1  # the two columns follow the interval
    assert list(df.columns) == [*old.columns[:cut], "accuracy_seeds", "accuracy_seed_std",
                                *old.columns[cut:]]
    assert set(df["point_id"]).isdisjoint(UNSEEDED_IDS)  # means are points of their own
    for _, row in df.iterrows():
        key = ((None, 0.0, "oneshot") if row["block_shape"] == "dense"
               else ("16x16", 0.5, row["accuracy_fidelity"]))
        r0, r1 = records[key]
        assert row["accuracy"] == (r0.pruned + r1.pruned) / 2
        assert row["accuracy_dense"] == (r0.dense + r1.dense) / 2
        assert row["accuracy_low"] == min(r0.pruned_low, r1.pruned_low)
        assert row["accuracy_high"] == max(r0.pruned_high, r1.pruned_high)
        assert row["accuracy_seeds"] == 2
        assert row["accuracy_seed_std"] == pytest.approx(abs(r0.pruned - r1.pruned)
                                                         / math.sqrt(2.0), rel=1e-12, abs=1e-15)
        prov = json.loads(row["provenance"])["accuracy"]
        assert prov["seeds"] == [0, 1] and prov["seed_keys"] == [r0.key, r1.key]
        # the hardware ran on seed 0's mask file
        assert prov["masks_path"] == r0.masks_path
    assert set(df["accuracy_fidelity"]) == {"oneshot", "retrain"}  # dense row, promoted row
    # the unseeded run measured exactly seed 0 (the recipe's own seed)
    for _, row in old.iterrows():
        key = ((None, 0.0, "oneshot") if row["block_shape"] == "dense"
               else ("16x16", 0.5, row["accuracy_fidelity"]))
        assert row["accuracy"] == records[key][0].pruned
    assert "means over 2 training seeds" in (tmp_path / "seeded" / "report.md").read_text()

    # re-runs measure nothing: from the store, and into a fresh folder from the cache (in the
    # main process: the seeds combined there give the table the workers' run gave)
    again = run_sweep(seeded, tmp_path / "seeded", workers=1, cache=cache)
    assert again.n_new == 0 and again.n_accuracy_measured == 0
    created = sorted(r.created for r in cache.records())
    fresh = run_sweep(seeded, tmp_path / "fresh", workers=1, cache=cache)
    assert fresh.n_new == 3 and sorted(r.created for r in cache.records()) == created
    pd.testing.assert_frame_equal(_csv(tmp_path / "fresh"), df)
