"""codesign's batched hardware evaluation gives the per-job columns exactly."""
from __future__ import annotations

import itertools
import math

import hwmodels
from hwmodels import BlockShape

from codesign.study import Fit
from codesign.sweep.hardware import (HardwareJob, MaskSource, evaluate_hardware,
                                     evaluate_hardware_batch)

TINY = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 128,
        "num_attention_heads": 4, "intermediate_size": 256}


def test_evaluate_hardware_batch_equals_one_job_at_a_time():
    jobs = []
    for (clock, bw, df), source in itertools.product(
            itertools.product((150, 250), (2.0, 12.0), ("ws", "os")),
            (MaskSource("none"), MaskSource("dense", block=BlockShape(16, 8)))):
        acc = hwmodels.load_board("zcu102", {
            "pe_array": {"rows": 16, "cols": 16}, "clock_mhz": clock, "dataflow": df,
            "sparse_strategy": "compact", "dram": {"bandwidth_gb_s": bw}}, check_fit=False)
        jobs.append(HardwareJob(config=TINY, seq_len=32, batch=1, accelerator=acc,
                                fit=Fit(fits=True, message=""), engine="analytical",
                                masks=source))
    batch = evaluate_hardware_batch(jobs)
    for job, got in zip(jobs, batch):
        want = evaluate_hardware(job)
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert got[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(got[k]))


def test_inline_executor_batches_and_records_a_failure_against_its_own_point(tmp_path):
    from codesign.sweep.executors import InlineExecutor

    acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16}},
                              check_fit=False)

    def job(masks):
        return HardwareJob(config=TINY, seq_len=32, batch=1, accelerator=acc,
                           fit=Fit(fits=True, message=""), engine="analytical", masks=masks)
    good = job(MaskSource("none"))
    bad = job(MaskSource("file", path=str(tmp_path / "missing.safetensors")))
    ex = InlineExecutor()
    ex.submit(good, "good")
    ex.submit(bad, "bad")
    assert ex.pending() == 2
    out = {tag: (res, exc) for tag, res, exc in ex.drain()}
    assert ex.pending() == 0 and ex.drain() == []
    assert out["good"][0] == evaluate_hardware(good) and out["good"][1] is None
    assert out["bad"][0] is None and out["bad"][1] is not None


def test_pool_executor_sends_chunks_of_one_mask_set_and_records_failures_per_point(tmp_path):
    """--workers 2: queued jobs go to the workers as chunks of one mask set (at most half of
    a set each, so both workers get work), each simulated as a batch; the columns equal one
    job at a time, and a failing job fails its own point only."""
    from codesign.sweep.executors import PoolExecutor

    def job(clock, masks):
        acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16},
                                             "clock_mhz": clock}, check_fit=False)
        return HardwareJob(config=TINY, seq_len=32, batch=1, accelerator=acc,
                           fit=Fit(fits=True, message=""), engine="analytical", masks=masks)
    dense = MaskSource("dense", block=BlockShape(16, 8))
    missing = MaskSource("file", path=str(tmp_path / "missing.safetensors"))
    jobs = {f"d{c}": job(c, dense) for c in (100, 150, 200, 250, 300)}
    jobs["none"] = job(200, MaskSource("none"))
    jobs["bad"] = job(200, missing)
    ex = PoolExecutor(2)
    try:
        for tag, j in jobs.items():
            ex.submit(j, tag)
        assert ex.pending() == 7
        ex._flush()  # what drain does first: 5 dense jobs in chunks of 3 and 2, the others alone
        assert sorted(len(tags) for tags in ex._futures.values()) == [1, 1, 2, 3]
        out = {}
        while ex.pending():
            for tag, res, exc in ex.drain(block=True):
                out[tag] = (res, exc)
        assert len(out) == 7 and ex.pending() == 0
    finally:
        ex.close()
    for tag, j in jobs.items():
        res, exc = out[tag]
        if tag == "bad":
            assert res is None and "missing.safetensors" in str(exc)
        else:
            assert exc is None and res == evaluate_hardware(j)


def test_pool_executor_simulates_in_the_main_process_while_the_pool_measures():
    """While a measurement runs in the pool, queued hardware jobs do not wait behind it: the
    main process simulates them at the next drain, with the pool's columns."""
    import time

    from codesign.sweep.executors import PoolExecutor

    def job(clock):
        acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16},
                                             "clock_mhz": clock}, check_fit=False)
        return HardwareJob(config=TINY, seq_len=32, batch=1, accelerator=acc,
                           fit=Fit(fits=True, message=""), engine="analytical",
                           masks=MaskSource("dense", block=BlockShape(16, 8)))
    jobs = {c: job(c) for c in (100, 200, 300)}
    ex = PoolExecutor(1, measure_threads=1)
    try:
        measuring = ex._pool.submit(time.sleep, 120)  # stands for a measurement of minutes
        ex._futures[measuring] = "a measurement"
        for tag, j in jobs.items():
            ex.submit(j, tag)
        out = {tag: (res, exc) for tag, res, exc in ex.drain(block=True)}
        assert not measuring.done() and ex.pending() == 1  # only the measurement is left
        assert out == {tag: (evaluate_hardware(j), None) for tag, j in jobs.items()}
    finally:
        ex.close(cancel=True)  # stops the sleeping worker


def test_dask_executor_sends_each_mask_set_as_one_chunk_with_its_scattered_masks(tmp_path):
    """--dask: queued jobs go to the cluster as chunks of one mask set, the set's masks
    scattered once and passed to the batch; the columns equal one job at a time."""
    import distributed

    from codesign.masks import save_masks
    from codesign.sweep.executors import DaskExecutor
    from codesign.workload import encoder_workload

    names = [op.weight_name for op in encoder_workload(TINY, 32, 1).gemms if op.weight_name]
    wl = encoder_workload(TINY, 32, 1, mask_names=names)
    path = tmp_path / "m.safetensors"
    save_masks(path, {op.weight_name: hwmodels.BlockMask.random((16, 8), (op.n, op.k), 0.5,
                                                                seed=i)
                      for i, op in enumerate(wl.gemms) if op.weight_name}, {})

    def job(clock, masks):
        acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16},
                                             "clock_mhz": clock}, check_fit=False)
        return HardwareJob(config=TINY, seq_len=32, batch=1, accelerator=acc,
                           fit=Fit(fits=True, message=""), engine="analytical", masks=masks)
    jobs = {f"f{c}": job(c, MaskSource("file", path=str(path))) for c in (100, 200, 300)}
    jobs["none"] = job(200, MaskSource("none"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        ex = DaskExecutor(cluster.scheduler_address)
        try:
            for tag, j in jobs.items():
                ex.submit(j, tag)
            assert ex.pending() == 4
            ex._flush()
            assert sorted(len(tags) for tags in ex._futures.values()) == [1, 3]
            out = {}
            while ex.pending():
                for tag, res, exc in ex.drain(block=True):
                    out[tag] = (res, exc)
        finally:
            ex.close()
    for tag, j in jobs.items():
        assert out[tag] == (evaluate_hardware(j), None)
