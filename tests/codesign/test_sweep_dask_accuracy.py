"""Accuracy measurements on workers equal a local run's: a dask LocalCluster (2 worker processes,
1 thread each, whose environment points at no GLUE folder and no cache, so everything they
measure on must be shipped) and a local pool (--workers 2), each against a run in the main
process at the same thread count (1). One worker dies in its first measurement; its point is
measured again and nothing is lost.

The study is studies/tiny.yaml cut to 2 block shapes x 1 ratio x 1 array (oneshot, then one
configuration promoted to retrain), with a recipe whose accuracies differ between points (96
dense examples, batch 8) so equal accuracies are not all the majority class.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from cs_helpers import cache_records, cache_with_dense, main_process_run, tiny_cut

distributed = pytest.importorskip("distributed")

RECIPE = {"base": "quick", "eval_examples": 48, "dense_examples": 96, "batch_size": 8}
COMPARED = ["point_id", "block_shape", "prune_ratio", "array", "accuracy", "accuracy_dense",
            "accuracy_fidelity", "accuracy_low", "accuracy_high", "latency_ms", "energy_mj"]


@pytest.fixture(scope="module")
def small_study(glue_dir):
    return tiny_cut(RECIPE)


@pytest.fixture(scope="module")
def local_run(small_study, tmp_path_factory):
    """The study measured in the main process at 1 thread, into its own cache."""
    return main_process_run(small_study, tmp_path_factory.mktemp("local"))


def _assert_same_as_local(result, cache_dir: Path, local_run) -> None:
    from codesign.masks import load_masks

    ref, ref_cache = local_run
    table = lambda df: df[COMPARED].sort_values("point_id").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(table(result.points), table(ref.points))
    assert result.n_failed == 0 and result.n_accuracy_measured == ref.n_accuracy_measured == 4
    # accuracies differ between points: the comparison is not of majority-class constants
    assert result.points["accuracy"].nunique() >= 2
    records = cache_records(cache_dir)
    assert records == cache_records(ref_cache) and len(records) == 4
    assert {r["device"] for r in records.values()} == {"cpu"}  # this machine has no GPU
    names = sorted(p.name for p in (ref_cache / "masks").iterdir())
    assert sorted(p.name for p in (cache_dir / "masks").iterdir()) == names and len(names) == 3
    dense_path = next((cache_dir / "dense").iterdir())
    for name in names:
        got, want = load_masks(cache_dir / "masks" / name), load_masks(ref_cache / "masks" / name)
        assert got.masks.keys() == want.masks.keys()
        assert all((got.masks[k].grid == want.masks[k].grid).all() for k in got.masks)
        # the metadata is the local file's, naming this cache's dense checkpoint
        assert got.metadata["source_checkpoint"] == str(dense_path)
        assert {**got.metadata, "source_checkpoint": ""} == \
            {**want.metadata, "source_checkpoint": ""}
    # the records name the main process's cache paths, never a worker's
    with sqlite3.connect(cache_dir / "accuracy.sqlite") as conn:
        for path, ck in conn.execute("SELECT json_extract(record, '$.masks_path'), "
                                     "json_extract(record, '$.dense_checkpoint') FROM accuracy"):
            assert path is None or Path(path).parent == cache_dir / "masks"
            assert ck == str(dense_path)


def _dies_once(flag: Path, real):
    """run_measure_job, except that the first call anywhere kills its worker process."""

    def run(job, cache_files, glue_files):
        if not os.path.exists(flag):
            Path(flag).write_text(f"{job.block} {job.ratio} {job.fidelity}")
            os._exit(1)
        return real(job, cache_files, glue_files)

    return run


def test_dask_workers_measure_and_equal_a_local_run(small_study, local_run, tmp_path,
                                                   monkeypatch):
    from codesign.sweep import remote, run_sweep

    cache = cache_with_dense(local_run[1], tmp_path / "cache")
    flag = tmp_path / "died"
    monkeypatch.setattr(remote, "run_measure_job", _dies_once(flag, remote.run_measure_job))
    nowhere = tmp_path / "workers-see-no-files"
    env = {"CODESIGN_THREADS": "1", "CODESIGN_GLUE_DIR": str(nowhere / "glue"),
           "CODESIGN_CACHE_DIR": str(nowhere / "cache"), "HF_HUB_OFFLINE": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None, protocol="tcp",
                                  env=env) as cluster:
        result = run_sweep(small_study, tmp_path / "out", dask=cluster.scheduler_address,
                           cache=cache, write=False)
    assert flag.is_file()  # a worker died in a measurement, and its point was measured again
    assert not nowhere.exists()  # the workers used no GLUE folder or cache of their own
    _assert_same_as_local(result, tmp_path / "cache", local_run)


def test_local_workers_measure_at_their_thread_share(small_study, local_run, tmp_path,
                                                    monkeypatch):
    from codesign.sweep import run_sweep

    monkeypatch.setenv("CODESIGN_THREADS", "2")  # 2 cores // 2 workers: 1 thread each
    cache = cache_with_dense(local_run[1], tmp_path / "cache")
    result = run_sweep(small_study, tmp_path / "out", workers=2, cache=cache, write=False)
    _assert_same_as_local(result, tmp_path / "cache", local_run)


def test_measurement_thread_rule(monkeypatch):
    from codesign.sweep.runner import measure_threads

    monkeypatch.setenv("CODESIGN_THREADS", "4")
    assert [measure_threads("auto", workers=n, dask=None) for n in (1, 2, 3, 4, 5)] == \
        [0, 2, 1, 1, 0]  # workers=1 measures in the main process; 5 would oversubscribe 4
    assert measure_threads("workers", workers=5, dask=None) == 1
    assert measure_threads("main", workers=2, dask=None) == 0
    assert measure_threads("auto", workers=2, dask="tcp://127.0.0.1:1") == 0  # dask: workers'
    with pytest.raises(ValueError, match="measure_on 'gpu'"):
        measure_threads("gpu", workers=2, dask=None)


def test_worker_thread_rule(monkeypatch):
    """A job's threads win; else the worker's $CODESIGN_THREADS; else its CPUs (outside dask
    one slot)."""
    from codesign.pruning.batching import default_threads
    from codesign.sweep.remote import worker_threads

    monkeypatch.setenv("CODESIGN_THREADS", "3")
    assert worker_threads(2) == 2 and worker_threads(None) == 3
    monkeypatch.delenv("CODESIGN_THREADS")
    assert worker_threads(None) == default_threads() >= 1
