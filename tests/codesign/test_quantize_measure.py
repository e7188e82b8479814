"""Accuracy measured at a precision on the real MiniLM weights and real SST-2 rows: the dense
model fake-quantized at w8a8 stays within a point of fp32, the record and the cache key carry the
precision, w4a8 differs from w8a8, the CLI and a study sweeping precision run end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from codesign.accuracy import AccuracyCache, Recipe, measure
from codesign.masks import load_masks

pytestmark = pytest.mark.slow

MODEL = "minilm-l6"
#: a small but real dense model (test_accuracy_honest's recipe: 640 training sentences, seq 32,
#: one epoch), evaluated on all 872 dev sentences, so a point of accuracy is about 9 sentences;
#: measured: fp32 0.7133, w8a8 0.7122, w4a8 0.7122 (docs/accuracy.md "Precision")
SMALL = Recipe(max_seq_len=32, batch_size=32, dense_examples=640, dense_lr=3e-4)
QUICK = Recipe.quick(examples=48, seq=32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return AccuracyCache(tmp_path_factory.mktemp("quant-cache"))


@pytest.fixture(scope="module")
def dense_at(cache, glue_dir):
    """precision -> the dense model's record at that precision (SMALL recipe)."""
    return {p: measure(MODEL, "sst2", None, 0.0, "oneshot", SMALL, glue_dir=glue_dir,
                       cache=cache, precision=p) for p in ("fp32", "w8a8", "w4a8")}


def test_w8a8_within_one_point_of_fp32_on_the_dense_model(dense_at):
    fp32, w8 = dense_at["fp32"], dense_at["w8a8"]
    assert fp32.dev_examples == w8.dev_examples == 872
    assert fp32.pruned > 0.7  # a real model, not chance (majority class: 0.509)
    assert abs(w8.pruned - fp32.pruned) < 0.01, (fp32.pruned, w8.pruned)
    assert w8.dense == fp32.pruned  # the record's baseline stays the fp32 dense model


def test_records_name_their_precision_and_keys_separate_them(dense_at, cache):
    assert {p: r.precision for p, r in dense_at.items()} == {
        "fp32": "fp32", "w8a8": "w8a8", "w4a8": "w4a8"}
    assert len({r.key for r in dense_at.values()}) == 3
    assert dense_at["w8a8"].recipe["quant_calib_examples"] == 256
    assert "quant_calib_examples" not in dense_at["fp32"].recipe
    for p, rec in dense_at.items():  # each served from the cache under its own key
        assert cache.get(rec.key).precision == p


def test_w4a8_differs_from_w8a8(dense_at):
    """Different predictions (the bootstrap interval is a function of the prediction vector;
    the headline accuracy alone may coincide: on the default recipe's dense model both score
    0.7924 with different intervals)."""
    w4, w8 = dense_at["w4a8"], dense_at["w8a8"]
    assert w4.key != w8.key and w4.metrics != w8.metrics


def test_alias_shares_the_measurement(dense_at, cache, glue_dir):
    rec = measure(MODEL, "sst2", None, 0.0, "oneshot", SMALL, glue_dir=glue_dir, cache=cache,
                  precision="int8")
    assert rec.from_cache and rec.key == dense_at["w8a8"].key


def test_pruned_point_at_w4a8_keeps_the_masks(cache, glue_dir):
    fp32 = measure(MODEL, "sst2", "16x16", 0.5, "oneshot", QUICK, glue_dir=glue_dir, cache=cache)
    w4 = measure(MODEL, "sst2", "16x16", 0.5, "oneshot", QUICK, glue_dir=glue_dir, cache=cache,
                 precision="w4a8")
    assert w4.key != fp32.key and w4.precision == "w4a8" and w4.density == fp32.density
    a, b = load_masks(fp32.masks_path), load_masks(w4.masks_path)
    assert all((a.masks[n].grid == b.masks[n].grid).all() for n in a.masks)


def test_cli_accuracy_precision(cache, glue_dir):
    env = dict(os.environ, CODESIGN_GLUE_DIR=str(glue_dir))
    out = subprocess.run(
        [sys.executable, "-m", "codesign.cli", "accuracy", "--task", "sst2", "--block", "16x16",
         "--ratio", "0.5", "--fidelity", "oneshot", "--precision", "w4a8", "--cache",
         str(cache.root), "--recipe", "max_seq_len=32", "--recipe", "batch_size=16",
         "--recipe", "eval_examples=48", "--recipe", "dense_examples=48", "--json"],
        capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["precision"] == "w4a8" and rec["ratio"] == 0.5
    bad = subprocess.run([sys.executable, "-m", "codesign.cli", "accuracy", "--task", "sst2",
                          "--precision", "int4", "--cache", str(cache.root)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "int4" in bad.stderr and "Traceback" not in bad.stderr


STUDY = """\
name: precision
model: {{name: minilm-l6, seq_len: 32, batch: 1}}
tasks: [sst2]
pruning: {{method: magnitude, block_shapes: [16x16], prune_ratios: [0.5]}}
accuracy:
  recipe: {{base: quick, eval_examples: 48, dense_examples: 48}}
  precision: {mode}
hardware:
  board: zcu102
  pe_array: [16x16]
  precision: [w8a8, w4a8]
objectives: [{{latency_ms: min}}, {{accuracy: max}}]
constraints: {{fits_board: true}}
"""


@pytest.mark.parametrize("mode", ["hardware", "fp32"])
def test_study_points_carry_the_accuracy_of_their_precision(tmp_path, cache, glue_dir, mode):
    from codesign.study import load_study
    from codesign.sweep import run_sweep

    path = tmp_path / "precision.yaml"
    path.write_text(STUDY.format(mode=mode))
    study = load_study(path)
    df = run_sweep(study, tmp_path / "out", workers=1, cache=cache).points
    assert set(df["precision"]) == {"w8a8", "w4a8"}
    for _, row in df.iterrows():
        want = row["precision"] if mode == "hardware" else "fp32"
        assert row["accuracy_precision"] == want
        block = None if row["block_shape"] == "dense" else "16x16"
        ratio = 0.0 if block is None else 0.5
        rec = measure(MODEL, "sst2", block, ratio, "oneshot", study_recipe(study),
                      glue_dir=glue_dir, cache=cache, precision=want)
        assert rec.from_cache and row["accuracy"] == rec.pruned


def study_recipe(study):
    return Recipe.from_spec(study.accuracy.recipe)
