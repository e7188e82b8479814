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

import io

import pandas as pd
import pytest

from cs_helpers import cache_records, cache_with_dense, main_process_run, tiny_cut

RECIPE = {"base": "quick", "eval_examples": 48, "dense_examples": 96, "batch_size": 8,
          "quant_calib_examples": 64}
COMPARED = ["point_id", "block_shape", "prune_ratio", "array", "precision", "accuracy",
            "accuracy_dense", "accuracy_precision", "accuracy_low", "accuracy_high",
            "latency_ms", "energy_mj"]


@pytest.fixture(scope="module")
def study(glue_dir):
    from codesign.study import StageSpec

    return tiny_cut(RECIPE, accuracy={"precision": "hardware",
                                      "stages": [StageSpec(fidelity="oneshot")]},
                    hardware={"precision": ["w8a8"]})


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
    import codesign.accuracy

    from codesign.sweep.progress import Progress

    counting = _Counting(codesign.accuracy.measure)
    progress = Progress(stream=io.StringIO(), force_plain=True)
    result = main_process_run(study, tmp_path_factory.mktemp("main"), measure=counting,
                              progress=progress)
    assert sorted(counting.pruned) == [("16x16", 0.5, "w8a8"), ("32x32", 0.5, "w8a8")]
    # a new cache: the dense model is fine-tuned first, and the run says so once
    lines = progress.stream.getvalue().splitlines()
    assert [ln for ln in lines if ln.startswith("fine-tuning")] == [
        "fine-tuning the dense model of sst2 on 96 examples (once per accuracy cache; minutes "
        "on a CPU)"]
    return result


def test_pool_workers_measure_at_w8a8_and_equal_the_main_process(study, main_run, tmp_path,
                                                               monkeypatch):
    import codesign.accuracy
    from codesign.sweep import run_sweep
    from codesign.sweep.progress import Progress

    ref, ref_cache = main_run
    cache = cache_with_dense(ref_cache, tmp_path / "cache")
    counting = _Counting(codesign.accuracy.measure)
    monkeypatch.setattr(codesign.accuracy, "measure", counting)
    monkeypatch.setenv("CODESIGN_THREADS", "2")  # 2 cores // 2 workers: 1 thread each
    progress = Progress(stream=io.StringIO(), force_plain=True)
    result = run_sweep(study, tmp_path / "out", workers=2, cache=cache, write=False,
                       progress=progress)
    assert counting.pruned == []  # every pruned point was measured on a worker
    # each worker's measurement is reported as it arrives, with its score
    lines = progress.stream.getvalue().splitlines()
    assert not any(line.startswith("fine-tuning") for line in lines)  # the dense model cached
    for block in ("16x16", "32x32"):
        row = result.points[result.points["block_shape"] == block].iloc[0]
        assert any(line.startswith(f"measured sst2 {block} ratio 0.5 (oneshot): accuracy "
                                   f"{row['accuracy']:.3f} [") for line in lines), lines
    table = lambda df: df[COMPARED].sort_values("point_id").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(table(result.points), table(ref.points))
    assert set(result.points["accuracy_precision"]) == {"w8a8"}
    records = cache_records(tmp_path / "cache")
    assert records == cache_records(ref_cache) and len(records) == 3  # dense + 2 pruned, at w8a8
    assert {r["precision"] for r in records.values()} == {"w8a8"}
    assert {r["recipe"]["quant_calib_examples"] for r in records.values()} == {64}
    # the keys are those of a w8a8 measurement with this recipe
    from codesign.accuracy import Recipe, model_sha256, record_key

    recipe = Recipe.from_spec(RECIPE)
    sha = model_sha256(study.model.name)
    for block in ("16x16", "32x32"):
        assert record_key(sha, "sst2", block, 0.5, "oneshot", recipe, "w8a8") in records
