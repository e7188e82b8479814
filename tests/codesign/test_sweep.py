"""End to end: studies/tiny.yaml (2 block shapes x 2 ratios x 2 PE arrays, quick accuracy
recipe) from YAML to points.csv, pareto.png and report.md; an interrupted run resumes with the
same points and no duplicates; workers=2 and a dask LocalCluster give the local run's results.

The accuracy measurements (the expensive part) share one session-scoped cache folder
(tests/codesign/conftest.py), so each (block, ratio) is measured once for the whole session.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"

# columns every points table must have (the contract) and the ones compared between runs
CONTRACT = ["point_id", "task", "model", "block_shape", "prune_ratio", "compression",
            "sparse_strategy", "dataflow", "array", "latency_ms", "energy_mj",
            "sequences_per_s", "utilization", "dsp_fraction", "bram_fraction", "fits",
            "accuracy", "accuracy_metric", "accuracy_dense", "accuracy_drop",
            "accuracy_fidelity", "accuracy_source", "hw_source", "provenance", "pareto"]
COMPARED = ["point_id", "block_shape", "prune_ratio", "compression", "array", "sparse_strategy",
            "latency_ms", "energy_mj", "utilization", "accuracy", "accuracy_fidelity", "pareto"]


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return df[COMPARED].sort_values("point_id").reset_index(drop=True)


def test_end_to_end_outputs(reference, study):
    out = reference.out_dir
    df = pd.read_csv(out / "points.csv")
    for col in CONTRACT:
        assert col in df.columns, col
    # 2 arrays x (dense baseline + 2 blocks x 2 ratios)
    assert len(df) == 10 and df["point_id"].is_unique
    assert set(df["block_shape"]) == {"dense", "16x16", "32x32"}
    assert set(df["array"]) == {"16x16", "32x32"}
    for name in ("pareto.png", "report.md", "study.yaml", "optuna.journal"):
        assert (out / name).exists(), name
    assert df["pareto"].any()
    assert df["hw_source"].str.startswith("simulated:").all()
    # dense baselines: no pruning, compression 1, sparse strategy "dense"
    dense = df[df["block_shape"] == "dense"]
    assert (dense["compression"] == 1.0).all() and (dense["sparse_strategy"] == "dense").all()
    sparse = df[df["block_shape"] != "dense"]
    # compression is counted on the real masks: close to 1/(1-ratio)
    ideal = 1.0 / (1.0 - sparse["prune_ratio"])
    assert ((sparse["compression"] - ideal).abs() / ideal < 0.05).all()
    # accuracy is measured once per (block, ratio) and reused on every accelerator
    per_cfg = sparse.groupby(["block_shape", "prune_ratio", "accuracy_fidelity"])["accuracy"]
    assert (per_cfg.nunique() == 1).all()
    prov = json.loads(sparse.iloc[0]["provenance"])
    assert prov["accuracy"]["masks_path"].endswith(".safetensors")
    # multi-fidelity: exactly one (block, ratio) promoted to retrain, named in every row
    promoted = sparse[sparse["accuracy_fidelity"] == "retrain"]
    assert promoted[["block_shape", "prune_ratio"]].drop_duplicates().shape[0] == 1
    assert len(promoted) == 2  # on both arrays
    assert set(sparse["accuracy_fidelity"]) == {"oneshot", "retrain"}
    # the front is among feasible points only
    assert df.loc[df["pareto"], "fits"].all()


def test_rerun_is_served_from_the_store(reference, study, cache):
    from codesign.sweep import run_sweep

    t0 = time.monotonic()
    again = run_sweep(study, reference.out_dir, workers=1, cache=cache)
    assert again.n_new == 0 and again.n_accuracy_measured == 0
    assert time.monotonic() - t0 < 30
    pd.testing.assert_frame_equal(_table(again.points), _table(reference.points))


def test_interrupted_run_resumes_without_duplicates(reference, study, cache, tmp_path):
    import optuna

    from codesign.sweep import SweepInterrupted, run_sweep

    with pytest.raises(SweepInterrupted) as info:
        run_sweep(study, tmp_path, workers=1, cache=cache, stop_after=4)
    assert info.value.result.n_new == 4
    partial = pd.read_csv(tmp_path / "points.csv")
    assert len(partial) == 4  # what was stored is exported
    resumed = run_sweep(study, tmp_path, workers=1, cache=cache)
    assert resumed.n_new == 12 - 4  # 10 points + 2 promoted evaluations, minus the stored ones
    df = resumed.points
    assert df["point_id"].is_unique
    pd.testing.assert_frame_equal(_table(df), _table(reference.points))
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    trials = optuna.load_study(study_name=study.name, storage=storage).get_trials()
    keys = [(t.user_attrs["point_id"], t.user_attrs["fidelity"]) for t in trials]
    assert len(keys) == len(set(keys)) == 12


def test_sigint_leaves_a_consistent_store(reference, study, cache_dir, tmp_path):
    """A real Ctrl-C (SIGINT) to `codesign sweep` mid-run, then a resumed run."""
    env = {**os.environ, "CODESIGN_CACHE_DIR": str(cache_dir)}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "codesign.cli", "sweep", str(TINY), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    journal = out / "optuna.journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"point_id"') >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    if proc.returncode != 0:
        assert "interrupted" in stderr and "resume" in stderr, stderr
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    df = pd.read_csv(out / "points.csv")
    assert df["point_id"].is_unique
    pd.testing.assert_frame_equal(_table(df), _table(reference.points), check_dtype=False)


def test_progress_reports_each_measurement_with_its_score(reference, study, cache, tmp_path):
    """A line per (block, ratio) measurement as it arrives (points are only stored once
    simulated too), with the score that reaches the points."""
    import io

    from codesign.sweep import run_sweep
    from codesign.sweep.progress import Progress

    progress = Progress(stream=io.StringIO(), force_plain=True)
    result = run_sweep(study, tmp_path, workers=1, cache=cache, write=False, progress=progress)
    lines = [line for line in progress.stream.getvalue().splitlines()
             if line.startswith("measured ")]
    sparse = result.points[result.points["block_shape"] != "dense"]
    expected = {f"measured sst2 {r.block_shape} ratio {r.prune_ratio:g} ({r.accuracy_fidelity})"
                f": accuracy {r.accuracy:.3f}" for r in sparse.itertuples()}
    got = {line.split(" [")[0] for line in lines}
    # the points hold each (block, ratio) at its last fidelity; the lines every measurement:
    # 4 oneshot and the one promoted to retrain
    assert expected <= got and len(got) == len(lines) == 5
    assert sum("(retrain)" in line for line in lines) == 1
    assert all(f"dense {result.points['accuracy_dense'].iloc[0]:.3f}, " in line
               for line in lines)


def test_dry_run_estimate_counts_the_cached_work_and_the_cores(reference, study, cache,
                                                              tmp_path, monkeypatch):
    """The dry run's estimate leaves out what the accuracy cache holds and spreads the
    measurements over the cores that make them."""
    from codesign.accuracy import AccuracyCache
    from codesign.sweep import accuracy_seconds, describe

    warm = describe(study, time_one=False, cache=cache)  # the reference run filled it
    assert warm["cache_checked"] and (warm["accuracy_todo"], warm["dense_todo"]) == (0, 0)
    assert warm["accuracy_total"] == 5 and warm["estimate_s"] == 0.0  # 4 oneshot + 1 retrain
    monkeypatch.setenv("CODESIGN_THREADS", "1")
    cold = describe(study, time_one=False, cache=AccuracyCache(tmp_path / "empty"))
    assert (cold["accuracy_todo"], cold["dense_todo"], cold["cores"]) == (5, 1, 1)
    secs = accuracy_seconds(study)
    assert cold["estimate_s"] == pytest.approx(secs["dense"] + 4 * secs["oneshot"]
                                               + secs["retrain"])
    monkeypatch.setenv("CODESIGN_THREADS", "2")
    two = describe(study, time_one=False, cache=AccuracyCache(tmp_path / "empty"), workers=2)
    assert two["cores"] == 2 and two["estimate_s"] == pytest.approx(cold["estimate_s"] / 2)


def test_two_workers_equal_one(reference, study, cache, tmp_path):
    from codesign.sweep import run_sweep

    result = run_sweep(study, tmp_path, workers=2, cache=cache)
    assert result.n_new == 12
    pd.testing.assert_frame_equal(_table(result.points), _table(reference.points))


def test_dask_local_cluster_equals_local_run(reference, study, cache, tmp_path):
    import distributed
    from codesign.sweep import run_sweep

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  protocol="tcp") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        result = run_sweep(study, tmp_path, dask=cluster.scheduler_address, cache=cache)
    assert result.n_new == 12
    pd.testing.assert_frame_equal(_table(result.points), _table(reference.points))


def test_nsga2_search_spends_its_budget_applies_constraints_and_resumes(study, cache,
                                                                         tmp_path):
    """8 asked trials exactly; a 128x128 array does not fit the ZCU102 (8,192 DSP for int8), so
    its points are infeasible, and every stored trial carries the constraint values NSGA-II
    reads (optuna's named constraints, feasible <= 0)."""
    import optuna

    from codesign.sweep import run_sweep

    search = study.model_copy(update={
        # seed 1: the first generation visits both arrays and asks one point twice
        "search": study.search.model_copy(update={"method": "nsga2", "trials": 8,
                                                  "population": 4, "seed": 1}),
        "accuracy": study.accuracy.model_copy(update={"stages": study.accuracy.stages[:1]}),
        "hardware": study.hardware.model_copy(update={"pe_array": ["16x16", "128x128"]})})
    first = run_sweep(search, tmp_path, cache=cache)
    df = first.points
    assert df["point_id"].is_unique and len(df) >= 1
    assert set(df["block_shape"]) <= {"dense", "16x16", "32x32"}
    assert set(df["array"]) == {"16x16", "128x128"}
    # every accelerator visited has its dense baseline
    for arr in df["array"].unique():
        assert ((df["array"] == arr) & (df["block_shape"] == "dense")).any()
    # the trial budget: exactly 8 trials asked and told, nothing left running
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    trials = optuna.load_study(study_name=study.name, storage=storage).get_trials()
    asked = [t for t in trials if any(k.endswith(":generation") for k in t.system_attrs)]
    assert len(asked) == 8
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
               for t in trials)
    # constraints: accuracy drop over the 50-point limit, and the board fit
    limit = study.constraints.max_accuracy_drop
    for t in trials:
        rec = json.loads(t.user_attrs["record"])
        drop = rec["accuracy_drop"]
        assert t.constraints == {"accuracy_drop": (drop - limit) if drop is not None else 0.0,
                                 "fits": 0.0 if rec["fits"] else 1.0}
    big = df["array"] == "128x128"
    assert not df.loc[big, "fits"].any() and df.loc[~big, "fits"].all()
    assert not df.loc[big, "feasible"].any() and not df.loc[big, "pareto"].any()
    assert df.loc[~big, "feasible"].all()  # the tiny study's drops are far below 50 points
    again = run_sweep(search, tmp_path, cache=cache)
    assert again.n_new == 0  # the trial budget is already spent: nothing recomputed
    assert len(again.points) == len(df)
    assert not math.isnan(float(df["latency_ms"].min()))


def test_hardware_only_study_uses_oneshot_masks(reference, study, cache, tmp_path):
    """accuracy.measure: false -> no accuracy, masks from codesign.accuracy.oneshot_masks (the
    same pruning as the oneshot measurement, so the same latencies)."""
    from codesign.sweep import run_sweep

    hw_only = study.model_copy(update={
        "accuracy": study.accuracy.model_copy(update={"measure": False,
                                                      "stages": study.accuracy.stages[:1]}),
        "objectives": study.objectives[:2]})
    result = run_sweep(hw_only, tmp_path, cache=cache)
    df = result.points
    assert len(df) == 10 and df["accuracy"].isna().all()
    assert set(df["accuracy_fidelity"]) == {"none"} and result.n_accuracy_measured == 0
    ref = reference.points
    ref = ref[ref["accuracy_fidelity"] != "retrain"]
    merged = df.merge(ref, on=["block_shape", "prune_ratio", "array"], suffixes=("", "_ref"))
    assert len(merged) == 8  # the 2 promoted points ran on retrained masks: not compared
    assert (merged["latency_ms"] - merged["latency_ms_ref"]).abs().max() < 1e-9


def test_store_survives_a_torn_last_journal_line(tmp_path):
    """SIGKILL during a write can leave half a line: the store cuts it and carries on."""
    from optuna.distributions import CategoricalDistribution

    from codesign.store import ResultsStore

    dist = {"x": CategoricalDistribution(["a", "b"])}

    def rec(pid):
        return {"point_id": pid, "accuracy_fidelity": "oneshot", "latency_ms": 1.0}

    store = ResultsStore(tmp_path, "s", ["min"])
    store.add(rec("p1"), params={"x": "a"}, distributions=dist, values=[1.0],
              constraints={"fits": 0.0}, context="ctx")
    with open(tmp_path / "optuna.journal", "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "w", "study_id": 0, "datetime_sta')
    store = ResultsStore(tmp_path, "s", ["min"])
    store.add(rec("p2"), params={"x": "b"}, distributions=dist, values=[2.0],
              constraints={"fits": 0.0}, context="ctx")
    again = ResultsStore(tmp_path, "s", ["min"])
    assert [r["point_id"] for r in again.records("ctx")] == ["p1", "p2"]
    assert set(again.done("ctx")) == {("p1", "oneshot"), ("p2", "oneshot")}
    assert again.records("other") == []
