"""Measured accuracy at every fidelity on the real MiniLM weights and real SST-2 (tiny budgets),
with the recorded provenance, the cache (hits, persistence, interrupted measurements) and the CLI.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codesign import accuracy as acc
from codesign.accuracy import measurement
from codesign.accuracy import AccuracyCache, AccuracyError, Recipe, measure, oneshot_masks
from codesign.masks import load_masks

pytestmark = pytest.mark.slow

MODEL = "minilm-l6"
RECIPE = Recipe.quick(examples=48, seq=32)  # tens of examples, seq 32: plumbing, not accuracy


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return AccuracyCache(tmp_path_factory.mktemp("acc-cache"))


@pytest.mark.parametrize("fidelity", ["oneshot", "retrain", "rgl"])
def test_every_fidelity_end_to_end_with_provenance(cache, glue_dir, fidelity):
    rec = measure(MODEL, "sst2", "16x16", 0.5, fidelity, RECIPE, glue_dir=glue_dir, cache=cache)
    assert rec.source == "measured" and not rec.from_cache
    assert rec.task == "sst2" and rec.metric == "accuracy" and rec.fidelity == fidelity
    assert rec.block_shape == "16x16" and rec.ratio == 0.5 and rec.seed == 0
    assert 0.0 <= rec.pruned <= 1.0 and 0.0 <= rec.dense <= 1.0
    assert rec.metrics["accuracy"] == rec.pruned and rec.dense_metrics["accuracy"] == rec.dense
    assert rec.dev_examples == 48 and rec.seconds > 0 and rec.dense_seconds > 0
    # the recipe names exactly the stages this fidelity ran
    assert rec.recipe["fidelity"] == fidelity and rec.recipe["max_seq_len"] == 32
    assert rec.recipe["dense_examples"] == 48
    assert ("retrain_examples" in rec.recipe) == (fidelity != "oneshot")
    assert ("rgl_lambda" in rec.recipe) == (fidelity == "rgl")
    # MiniLM's 384x384 and 1536x384 matrices divide into 16x16 blocks: density is exactly 1/2
    assert rec.density == pytest.approx(0.5) and rec.compression == pytest.approx(2.0)
    # the mask file is the pruned model's, from the cached dense checkpoint
    ms = load_masks(rec.masks_path)
    assert len(ms.masks) == 36 and ms.block_shape == (16, 16)
    assert ms.metadata["method"] == fidelity and float(ms.metadata["ratio"]) == 0.5
    assert ms.metadata["source_checkpoint"] == rec.dense_checkpoint
    name = "bert.encoder.layer.3.attention.self.query.weight"
    assert ms.masks[name].grid.shape == (24, 24)
    # oneshot and rgl prune every matrix at the ratio; retrain starts from the calibrated
    # fidelity's Fisher ranking across the model: half of all blocks, each matrix its own share
    kept = sum(int(m.grid.sum()) for m in ms.masks.values())
    assert kept == sum(m.grid.size for m in ms.masks.values()) // 2
    if fidelity != "retrain":
        assert ms.masks[name].block_density == 0.5
    dense_info = json.loads((Path(rec.dense_checkpoint) / "dense.json").read_text())
    assert dense_info["metrics"]["accuracy"] == rec.dense
    assert ms.metadata["source_sha256"] == acc.model_sha256(rec.dense_checkpoint)


def test_all_fidelities_share_one_dense_model(cache, glue_dir):
    recs = [measure(MODEL, "sst2", "16x16", 0.5, f, RECIPE, glue_dir=glue_dir, cache=cache)
            for f in ("oneshot", "retrain", "rgl")]
    assert len({r.dense_checkpoint for r in recs}) == 1 and len({r.dense for r in recs}) == 1
    assert len(list(cache.dense_dir.iterdir())) == 1


def test_cache_serves_repeat_without_recomputing(cache, glue_dir, monkeypatch):
    first = measure(MODEL, "sst2", "16x16", 0.5, "retrain", RECIPE, glue_dir=glue_dir, cache=cache)

    def boom(*a, **k):
        raise AssertionError("recomputed a cached point")

    monkeypatch.setattr(measurement, "prune_at_fidelity", boom)
    monkeypatch.setattr(measurement, "dense_checkpoint", boom)
    t0 = time.perf_counter()
    # a fresh cache object on the same file: what another run or study sees
    again = measure(MODEL, "sst2", (16, 16), 0.5, "retrain", RECIPE, glue_dir=glue_dir,
                    cache=AccuracyCache(cache.path))
    assert time.perf_counter() - t0 < 2.0
    assert again.from_cache and again.key == first.key and again.pruned == first.pruned
    assert again.seconds == first.seconds and again.masks_path == first.masks_path


def test_recipe_key_covers_only_the_stages_used():
    r2 = Recipe(retrain_examples=999)
    assert RECIPE.hash("oneshot") == Recipe.quick(48, 32).hash("oneshot")
    assert Recipe().hash("oneshot") == r2.hash("oneshot")
    assert Recipe().hash("retrain") != r2.hash("retrain")
    assert Recipe().hash("rgl") != Recipe(rgl_lambda=1e-3).hash("rgl")
    assert Recipe().hash("retrain") == Recipe(rgl_lambda=1e-3).hash("retrain")
    assert Recipe(seed=1).hash("oneshot") != Recipe().hash("oneshot")


def test_interrupted_measurement_leaves_no_entry(cache, glue_dir, monkeypatch):
    before = len(cache)
    masks_before = set(cache.masks_dir.iterdir())
    calls = []

    def evaluate_then_die(*a, **k):  # pruning and retraining have run: die at evaluation
        calls.append(1)
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(measurement, "evaluate_dev", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        measure(MODEL, "sst2", "16x16", 0.25, "retrain", RECIPE, glue_dir=glue_dir, cache=cache)
    assert calls and len(cache) == before
    assert set(cache.masks_dir.iterdir()) == masks_before
    key = acc.record_key(acc.model_sha256(MODEL), "sst2", "16x16", 0.25, "retrain", RECIPE)
    assert cache.get(key) is None
    monkeypatch.undo()
    rec = measure(MODEL, "sst2", "16x16", 0.25, "retrain", RECIPE, glue_dir=glue_dir, cache=cache)
    assert not rec.from_cache and rec.key == key and len(cache) == before + 1


def test_ratio_zero_is_the_dense_model(cache, glue_dir):
    rec = measure(MODEL, "sst2", None, 0.0, "retrain", RECIPE, glue_dir=glue_dir, cache=cache)
    assert rec.pruned == rec.dense and rec.masks_path is None and rec.density == 1.0
    same = measure(MODEL, "sst2", "16x16", 0.0, "rgl", RECIPE, glue_dir=glue_dir, cache=cache)
    assert same.from_cache and same.key == rec.key and same.block_shape is None


def test_oneshot_masks_are_the_measured_oneshot_masks(cache, glue_dir):
    rec = measure(MODEL, "sst2", "16x16", 0.5, "oneshot", RECIPE, glue_dir=glue_dir, cache=cache)
    path = oneshot_masks(MODEL, "sst2", "16x16", 0.5, RECIPE, glue_dir=glue_dir, cache=cache)
    assert str(path) == rec.masks_path
    # a point never measured: made from the cached dense model without evaluation
    other = oneshot_masks(MODEL, "sst2", "32x1", 0.75, RECIPE, glue_dir=glue_dir, cache=cache)
    ms = load_masks(other)
    assert ms.block_shape == (32, 1) and ms.metadata["method"] == "oneshot"
    name = "bert.encoder.layer.0.intermediate.dense.weight"  # 1536 x 384: 48 x 384 blocks
    assert ms.masks[name].grid.shape == (48, 384)
    assert ms.masks[name].grid.sum() == 48 * 384 - round(0.75 * 48 * 384)


def test_export_csv(cache, glue_dir, tmp_path):
    measure(MODEL, "sst2", "16x16", 0.5, "oneshot", RECIPE, glue_dir=glue_dir, cache=cache)
    path = cache.export_csv(tmp_path / "acc.csv")
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == len(cache) >= 1
    row = next(r for r in rows if r["fidelity"] == "oneshot" and r["block_shape"] == "16x16")
    assert row["source"] == "measured" and row["metric"] == "accuracy"
    assert json.loads(row["recipe"])["fidelity"] == "oneshot"
    assert float(row["dense"]) - float(row["pruned"]) == pytest.approx(float(row["drop"]))


def test_bad_inputs_are_one_line_errors(cache):
    for args, match in [(("sst2", "16x16", 1.0, "retrain"), "ratio"),
                        (("sst2", "16x16", 0.5, "magic"), "fidelity"),
                        (("sst2", None, 0.5, "retrain"), "block shape"),
                        (("mnli", "16x16", 0.5, "retrain"), "unknown GLUE task")]:
        with pytest.raises(ValueError, match=match) as err:
            measure(MODEL, *args, recipe=RECIPE, cache=cache)
        assert "\n" not in str(err.value)
    with pytest.raises(AccuracyError, match="retrain_examples"):
        Recipe(retrain_examples=0)


def test_cli_json_from_cache_and_export(cache, glue_dir, tmp_path):
    measure(MODEL, "sst2", "16x16", 0.5, "retrain", RECIPE, glue_dir=glue_dir, cache=cache)
    overrides = [a for k, v in [("max_seq_len", 32), ("batch_size", 16), ("eval_examples", 48),
                                ("dense_examples", 48), ("dense_lr", 3e-4),
                                ("dense_fill", "false"), ("retrain_examples", 48),
                                ("retrain_lr", 1e-4),
                                ("rgl_examples", 48), ("rgl_reweight_every", 1),
                                ("calib_examples", 48), ("recovery_holdout", 48)]
                 for a in ("--recipe", f"{k}={v}")]
    env = {**os.environ, "CODESIGN_GLUE_DIR": str(glue_dir)}
    out = subprocess.run([sys.executable, "-m", "codesign.cli", "accuracy", "--task", "sst2",
                          "--block", "16x16", "--ratio", "0.5", "--fidelity", "retrain",
                          "--cache", str(cache.root), "--json", *overrides],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for k in ("task", "metric", "dense", "pruned", "fidelity", "recipe", "seconds"):
        assert k in data
    assert data["from_cache"] and data["fidelity"] == "retrain" and data["source"] == "measured"
    csv_path = tmp_path / "export.csv"
    out = subprocess.run([sys.executable, "-m", "codesign.cli", "accuracy", "--cache",
                          str(cache.root), "--export-csv", str(csv_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(list(csv.DictReader(open(csv_path)))) == len(cache)


def test_cli_without_glue_folder_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CODESIGN_GLUE_DIR"}
    out = subprocess.run([sys.executable, "-m", "codesign.cli", "accuracy", "--task", "sst2",
                          "--block", "16x16", "--ratio", "0.5", "--cache", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "--glue-dir" in err[0] and "CODESIGN_GLUE_DIR" in err[0]
