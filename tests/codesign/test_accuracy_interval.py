"""Dev-set uncertainty: the bootstrap interval of every official metric, its travel through the
record and the accuracy cache (old cache files stay readable, their rows report no interval),
and the points.csv columns built from it. No model is loaded here (the measurement path is
covered by test_accuracy_measure.py, which now carries the interval)."""
from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from codesign.accuracy import AccuracyCache, AccuracyRecord
from codesign.glue import bootstrap_interval, compute_metrics, interval_keys, metric_replicates
from codesign.pareto import drop_interval, interval_straddles, intervals_overlap


def _binary(n: int, p_correct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    return np.where(rng.random(n) < p_correct, gold, 1 - gold), gold


@pytest.mark.parametrize("task,metric", [("sst2", "accuracy"), ("cola", "matthews_corr"),
                                         ("mrpc", "f1"), ("mrpc", "accuracy"),
                                         ("stsb", "pearson"), ("stsb", "spearmanr")])
def test_each_replicate_is_compute_metrics_on_that_resample(task, metric):
    rng = np.random.default_rng(3)
    if task == "stsb":
        gold = rng.uniform(0, 5, 200).astype(np.float32)
        preds = np.round(gold + rng.normal(0, 1.2, 200), 1)  # rounded: ties for spearman
    else:
        preds, gold = _binary(200, 0.8, 3)
    index = rng.integers(0, 200, size=(25, 200))
    index[0] = 0  # a constant resample: the degenerate-case conventions must match too
    got = metric_replicates(task, preds, gold, index, metric=metric)
    want = [compute_metrics(task, preds[i], gold[i])[metric] for i in index]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("task", ["sst2", "cola", "mrpc", "stsb"])
def test_interval_contains_the_point_estimate(task):
    rng = np.random.default_rng(0)
    if task == "stsb":
        gold = rng.uniform(0, 5, 872)
        preds = gold + rng.normal(0, 1.5, 872)
    else:
        preds, gold = _binary(872, 0.8, 0)
    headline = {"sst2": "accuracy", "cola": "matthews_corr", "mrpc": "f1", "stsb": "pearson"}
    point = compute_metrics(task, preds, gold)[headline[task]]
    low, high = bootstrap_interval(task, preds, gold)
    assert low < point < high
    assert bootstrap_interval(task, preds, gold) == (low, high)  # seeded: reproducible
    assert bootstrap_interval(task, preds, gold, seed=1) != (low, high)


def test_accuracy_interval_matches_the_binomial_normal_approximation():
    for n in (872, 2000):
        preds, gold = _binary(n, 0.8, 5)
        p = float((preds == gold).mean())
        half = 1.96 * math.sqrt(p * (1 - p) / n)
        low, high = bootstrap_interval("sst2", preds, gold, n_resamples=4000)
        # percentile-bootstrap quantiles of a binomial mean: within 0.4 points of p -+ half
        assert abs(low - (p - half)) < 0.004 and abs(high - (p + half)) < 0.004, (n, low, high)


def test_interval_shrinks_as_one_over_sqrt_n():
    widths = {}
    for n in (400, 1600, 6400):
        preds, gold = _binary(n, 0.8, 7)
        low, high = bootstrap_interval("sst2", preds, gold, n_resamples=2000)
        widths[n] = high - low
    # 4x the examples: half the width (binomial sd ~ 1/sqrt(n)), within sampling wiggle
    assert 1.7 < widths[400] / widths[1600] < 2.3
    assert 1.7 < widths[1600] / widths[6400] < 2.3
    assert widths[400] > widths[1600] > widths[6400]


def test_interval_level_and_inputs():
    preds, gold = _binary(500, 0.7, 2)
    low90, high90 = bootstrap_interval("sst2", preds, gold, level=0.9)
    low95, high95 = bootstrap_interval("sst2", preds, gold, level=0.95)
    assert low95 <= low90 < high90 <= high95
    with pytest.raises(ValueError, match="must be equal"):
        bootstrap_interval("sst2", preds, gold[:-1])
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval("sst2", preds, gold, level=1.5)


def test_interval_is_fast_on_a_dev_set():
    import time

    preds, gold = _binary(872, 0.8, 1)
    t0 = time.perf_counter()
    bootstrap_interval("cola", preds, gold)
    assert time.perf_counter() - t0 < 1.0  # "well under a second" (measured ~0.02 s)


# --- the record and the cache -------------------------------------------------------------------


def _record(key: str, *, interval: tuple[float, float] | None,
            dense_interval: tuple[float, float] | None = None) -> AccuracyRecord:
    low_key, high_key = interval_keys("accuracy")
    metrics = {"accuracy": 0.75}
    if interval:
        metrics.update({low_key: interval[0], high_key: interval[1]})
    dense = {"accuracy": 0.79}
    if dense_interval:
        dense.update({low_key: dense_interval[0], high_key: dense_interval[1]})
    return AccuracyRecord(task="sst2", metric="accuracy", dense=0.79, pruned=0.75,
                          metrics=metrics, fidelity="oneshot", recipe={}, seconds=1.0,
                          masks_path=None, key=key, dense_metrics=dense, block_shape="16x16",
                          ratio=0.5)


def test_record_carries_the_interval_and_precision():
    rec = _record("k1", interval=(0.72, 0.78), dense_interval=(0.76, 0.82))
    assert (rec.pruned_low, rec.pruned_high, rec.dense_low, rec.dense_high) == \
        (0.72, 0.78, 0.76, 0.82)
    assert rec.precision == "fp32"
    data = rec.to_dict()
    assert data["pruned_low"] == 0.72 and data["precision"] == "fp32"
    assert AccuracyRecord.from_dict(data) == rec
    bare = _record("k2", interval=None)
    assert math.isnan(bare.pruned_low) and math.isnan(bare.dense_high)
    assert bare.to_dict()["pruned_low"] is None  # standard JSON, not NaN
    json.loads(json.dumps(bare.to_dict()), parse_constant=lambda c: pytest.fail(c))


def _old_table(path) -> None:
    """The accuracy table exactly as files written before intervals existed hold it."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE accuracy (key TEXT PRIMARY KEY, model TEXT, "
            "model_sha256 TEXT, task TEXT, block_shape TEXT, ratio REAL, fidelity TEXT, "
            "recipe_hash TEXT, metric TEXT, dense REAL, pruned REAL, density REAL, "
            "seconds REAL, masks_path TEXT, created TEXT, record TEXT NOT NULL)")
        old = {k: v for k, v in _record("old", interval=None).to_dict().items()
               if k not in ("pruned_low", "pruned_high", "dense_low", "dense_high",
                            "precision")}
        conn.execute("INSERT INTO accuracy VALUES (" + ",".join("?" * 16) + ")",
                     ("old", "", "", "sst2", "16x16", 0.5, "oneshot", "h", "accuracy", 0.79,
                      0.75, 1.0, 1.0, None, "", json.dumps(old)))


def test_an_old_cache_file_migrates_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "accuracy.sqlite"
    _old_table(path)
    cache = AccuracyCache(path)
    old = cache.get("old")
    assert old is not None and old.pruned == 0.75 and old.precision == "fp32"
    assert math.isnan(old.pruned_low) and math.isnan(old.dense_low)  # unknown, still valid
    cache.put(_record("new", interval=(0.72, 0.78), dense_interval=(0.76, 0.82)))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(accuracy)")]
        rows = dict(conn.execute("SELECT key, pruned_low FROM accuracy").fetchall())
    assert cols[-4:] == ["pruned_low", "pruned_high", "dense_low", "dense_high"]
    assert rows == {"old": None, "new": 0.72}
    new = AccuracyCache(path).get("new")  # a second instance: no second migration
    assert (new.pruned_low, new.pruned_high, new.dense_low, new.dense_high) == \
        (0.72, 0.78, 0.76, 0.82)
    assert len(cache) == 2 and {r.key for r in cache.records()} == {"old", "new"}
    csv_text = cache.export_csv(tmp_path / "all.csv").read_text()
    assert "pruned_low" in csv_text.splitlines()[0] and ",0.72," in csv_text


# --- the drop interval and the comparison rules -------------------------------------------------


def test_drop_interval_sets_the_pruned_interval_against_the_dense_point():
    low, high = drop_interval(0.80, 0.75, 0.79)
    assert math.isclose(low, 1.0) and math.isclose(high, 5.0)
    assert drop_interval(0.80, 0.80, 0.80, dense_model=True) == (0.0, 0.0)
    assert all(math.isnan(v) for v in drop_interval(0.80, math.nan, 0.79))


def test_overlap_and_straddle_rules():
    assert intervals_overlap((0.76, 0.81), (0.80, 0.84)) is True
    assert intervals_overlap((0.76, 0.79), (0.80, 0.84)) is False
    assert intervals_overlap((0.76, 0.79), (math.nan, 0.84)) is None
    assert interval_straddles(0.5, 2.5, 1.5) and not interval_straddles(1.6, 2.5, 1.5)
    assert not interval_straddles(0.5, 1.5, 1.5)  # all of it meets drop <= 1.5
    assert not interval_straddles(math.nan, 2.5, 1.5)


def test_points_record_has_the_interval_columns():
    from codesign.sweep.measurements import AccuracyResult
    from codesign.sweep.records import build_record
    from codesign.study import load_study, resolve
    from codesign.sweep.space import DesignSpace

    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "tiny.yaml",
                       check_data=False)
    space = DesignSpace.of(study)
    point = next(p for p in space.points() if p.block is not None)
    acc = AccuracyResult(0.75, "accuracy", 0.80, "oneshot", "measured", None, {},
                         low=0.72, high=0.78, dense_low=0.77, dense_high=0.83,
                         precision="fp32")
    hwres = {"latency_ms": 1.0, "hw_source": "simulated:analytical/0.1", "fits": True}
    rec = build_record(study, point, resolved=resolve(study, point.accelerator), acc=acc,
                       hwres=hwres, stage=0)
    assert (rec["accuracy_low"], rec["accuracy_high"]) == (0.72, 0.78)
    assert math.isclose(rec["accuracy_drop_low"], 2.0)
    assert math.isclose(rec["accuracy_drop_high"], 8.0)
    assert rec["accuracy_precision"] == "fp32"


@pytest.mark.slow
def test_the_tiny_study_writes_measured_intervals(reference):
    """End to end on real MiniLM weights and real SST-2 rows (the session's tiny study)."""
    df = reference.points
    measured = df[df["accuracy_source"] == "measured"]
    assert len(measured) == len(df) and (measured["accuracy_precision"] == "fp32").all()
    assert (measured["accuracy_low"] <= measured["accuracy"]).all()
    assert (measured["accuracy"] <= measured["accuracy_high"]).all()
    assert (measured["accuracy_high"] > measured["accuracy_low"]).all()
    dense = measured[measured["block_shape"] == "dense"]
    assert (dense["accuracy_drop_low"] == 0).all() and (dense["accuracy_drop_high"] == 0).all()
    sparse = measured[measured["block_shape"] != "dense"]
    np.testing.assert_allclose(sparse["accuracy_drop_low"],
                               100 * (sparse["accuracy_dense"] - sparse["accuracy_high"]))
    prov = json.loads(sparse.iloc[0]["provenance"])["accuracy"]
    assert prov["precision"] == "fp32" and prov["dev_examples"] > 0
