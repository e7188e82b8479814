"""Quantized accuracy measured on workers equals the main process's: a study whose points are
measured at their accelerator's precision (accuracy.precision: hardware, hardware.precision
w8a8), run once in the main process and once in a local pool (--workers 2, 1 thread each),
gives the same points, records and keys; the pool's pruned points are measured on the workers
(the main process measures only the dense model), at w8a8, with the recipe's calibration size.

The study is studies/tiny.yaml cut to 2 block shapes x 1 ratio x 1 array, oneshot only, with
the recipe of tests/codesign/test_sweep_dask_accuracy.py (96 dense examples, batch 8) and 64
calibration sentences.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"
RECIPE = {"base": "quick", "eval_examples": 48, "dense_examples": 96, "batch_size": 8,
          "quant_calib_examples": 64}
COMPARED = ["point_id", "block_shape", "prune_ratio", "array", "precision", "accuracy",
            "accuracy_dense", "accuracy_precision", "accuracy_low", "accuracy_high",
            "latency_ms", "energy_mj"]
_PER_RUN = ("created", "seconds", "dense_seconds", "masks_path", "dense_checkpoint")


@pytest.fixture(scope="module")
def study(glue_dir):
    from codesign.study import StageSpec, load_study

    base = load_study(TINY)
    return base.model_copy(update={
        "pruning": base.pruning.model_copy(update={"compression": [2.0]}),
        "accuracy": base.accuracy.model_copy(update={
            "recipe": RECIPE, "precision": "hardware",
            "stages": [StageSpec(fidelity="oneshot")]}),
        "hardware": base.hardware.model_copy(update={"pe_array": ["16x16"],
                                                     "precision": ["w8a8"]})})


class _Counting:
    """codesign.accuracy.measure in this process, counting the pruned points it measures."""

    def __init__(self, real):
        self.real, self.pruned = real, []

    def __call__(self, model, task, block, ratio, *args, **kwargs):
        if ratio:
            self.pruned.append((str(block), ratio, kwargs.get("precision")))
        return self.real(model, task, block, ratio, *args, **kwargs)


@pytest.fixture(scope="module")
def main_run(study, tmp_path_factory):
    import torch

    import codesign.accuracy
    from codesign.accuracy import AccuracyCache
    from codesign.sweep import run_sweep

    base = tmp_path_factory.mktemp("main")
    previous = torch.get_num_threads()
    counting = _Counting(codesign.accuracy.measure)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODESIGN_THREADS", "1")
        mp.setattr(codesign.accuracy, "measure", counting)
        torch.set_num_threads(1)
        try:
            result = run_sweep(study, base / "out", cache=AccuracyCache(base / "cache"),
                               write=False, measure_on="main")
        finally:
            torch.set_num_threads(previous)
    assert sorted(counting.pruned) == [("16x16", 0.5, "w8a8"), ("32x32", 0.5, "w8a8")]
    return result, base / "cache"


def _records(cache_dir: Path) -> dict[str, dict]:
    with sqlite3.connect(cache_dir / "accuracy.sqlite") as conn:
        rows = [json.loads(text) for (text,) in conn.execute("SELECT record FROM accuracy")]
    return {r["key"]: {k: v for k, v in r.items() if k not in _PER_RUN} for r in rows}


def test_pool_workers_measure_at_w8a8_and_equal_the_main_process(study, main_run, tmp_path,
                                                               monkeypatch):
    import codesign.accuracy
    from codesign.accuracy import AccuracyCache
    from codesign.sweep import run_sweep

    ref, ref_cache = main_run
    shutil.copytree(ref_cache / "dense", tmp_path / "cache" / "dense")
    counting = _Counting(codesign.accuracy.measure)
    monkeypatch.setattr(codesign.accuracy, "measure", counting)
    monkeypatch.setenv("CODESIGN_THREADS", "2")  # 2 cores // 2 workers: 1 thread each
    result = run_sweep(study, tmp_path / "out", workers=2, cache=AccuracyCache(tmp_path / "cache"),
                       write=False)
    assert counting.pruned == []  # every pruned point was measured on a worker
    table = lambda df: df[COMPARED].sort_values("point_id").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(table(result.points), table(ref.points))
    assert set(result.points["accuracy_precision"]) == {"w8a8"}
    records = _records(tmp_path / "cache")
    assert records == _records(ref_cache) and len(records) == 3  # dense + 2 pruned, at w8a8
    assert {r["precision"] for r in records.values()} == {"w8a8"}
    assert {r["recipe"]["quant_calib_examples"] for r in records.values()} == {64}
    # the keys are those of a w8a8 measurement with this recipe
    from codesign.accuracy import Recipe, model_sha256, record_key

    recipe = Recipe.from_spec(RECIPE)
    sha = model_sha256(study.model.name)
    for block in ("16x16", "32x32"):
        assert record_key(sha, "sst2", block, 0.5, "oneshot", recipe, "w8a8") in records
