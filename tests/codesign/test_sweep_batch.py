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
