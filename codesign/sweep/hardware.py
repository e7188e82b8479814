"""Hardware evaluation of one design point: the pure function the workers run.

What is modelled: a `HardwareJob` holds everything a worker needs, as frozen values: the model
config, sequence length and batch, the `hwmodels.Accelerator` itself (resolved once per choice by
codesign.study.resolve, so no worker reads the board YAML), its resource fit, the engine and where
the masks come from (`MaskSource`: none for the dense baseline, all-kept blocks of one shape for
ratio 0, or a mask file). `evaluate_hardware` simulates it with hwmodels.simulate on the encoder
workload named as the masks are keyed (codesign.workload.encoder_workload) and returns the
hardware columns of points.csv.

What is ignored: accuracy (measured in the main process); a mask file is read once per worker
process (memoised by path). hwmodels' caches (hwmodels.sweepcache: fold structures and schedules
keyed by mask content, array and buffers) live per worker process, so a worker's later jobs on
the same masks and array skip the mapping; `evaluate_hardware_batch` evaluates many jobs at once
(`evaluate_hardware_chunk`: what the inline executor, each pool worker and each dask task
run).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from hwmodels import BlockShape

from codesign.study import Fit


@dataclass(frozen=True)
class MaskSource:
    """Where a job's masks come from: `none` (dense baseline), `dense` (all blocks of `block`
    kept: the sparse format's cost at compression 1x) or `file` (a mask file at `path`)."""

    kind: Literal["none", "dense", "file"]
    block: BlockShape | None = None
    path: str | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class HardwareJob:
    """One hardware evaluation, picklable for process pools and dask."""

    config: Mapping[str, Any]
    seq_len: int
    batch: int
    accelerator: Any  # hwmodels.Accelerator (frozen)
    fit: Fit
    engine: str
    masks: MaskSource


@functools.lru_cache(maxsize=16)
def load_mask_file(path: str):
    """The masks of a mask file (memoised per process)."""
    from codesign.masks import load_masks

    return load_masks(path).masks


def _dense_masks(workload, block: BlockShape) -> dict[str, Any]:
    """All-kept masks of a block shape (compression 1x: the sparse format's cost only)."""
    import hwmodels

    out = {}
    for op in workload.ops:
        if getattr(op, "weight_name", None):
            # parameter orientation (out, in) = (N, K)
            out[op.weight_name] = hwmodels.BlockMask.dense(block, (op.n, op.k))
    return out


def evaluate_hardware(job: HardwareJob, masks: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate one design point; a pure function of its arguments (safe for any worker).

    `masks` given explicitly (dask: a scattered dict of BlockMask) replaces the mask file.
    Returns the hardware columns of points.csv.
    """
    import hwmodels

    workload, masks = _workload_and_masks(job, masks)
    report = hwmodels.simulate(workload, job.accelerator, masks=masks or None, engine=job.engine)
    return _columns(job, report, masks)


def evaluate_hardware_batch(jobs: list[HardwareJob],
                            masks: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`evaluate_hardware` for many jobs at once, in order, with the same columns bit for bit:
    jobs with the same model, sequence, batch, engine and mask source are simulated together
    by hwmodels.batch.simulate_points (schedules shared, timing vectorised over clocks and
    bandwidths). `masks` given (dask: the scattered masks of the jobs' one mask file) replaces
    the mask file."""
    from hwmodels import simulate_points

    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(batch_key(job), []).append(i)
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    for idx in groups.values():
        workload, used = _workload_and_masks(jobs[idx[0]], masks)
        reports = simulate_points(workload, [jobs[i].accelerator for i in idx],
                                  masks=used or None, engine=jobs[idx[0]].engine)
        for i, report in zip(idx, reports):
            out[i] = _columns(jobs[i], report, used)
    return out  # type: ignore[return-value]


def evaluate_hardware_chunk(
        jobs: list[HardwareJob], masks: dict[str, Any] | None = None,
) -> list[tuple[dict[str, Any] | None, Exception | None]]:
    """(columns, None) or (None, the exception) per job, in order: the jobs simulated as one
    batch (`evaluate_hardware_batch`; `masks` as there); if the batch fails, each job alone, so
    that a failure is recorded against its own point."""
    try:
        return [(res, None) for res in evaluate_hardware_batch(jobs, masks)]
    except Exception:  # noqa: BLE001 - find the failing point below
        out: list[tuple[dict[str, Any] | None, Exception | None]] = []
        for job in jobs:
            try:
                out.append((evaluate_hardware(job, masks), None))
            except Exception as exc:  # noqa: BLE001 - a failed point is recorded, not fatal
                out.append((None, exc))
        return out


def batch_key(job: HardwareJob) -> tuple:
    """Jobs with equal keys share a workload and masks (`evaluate_hardware_batch` simulates
    them together)."""
    return (repr(sorted(dict(job.config).items())), job.seq_len, job.batch, job.engine,
            job.masks)


def _workload_and_masks(job: HardwareJob, masks: dict[str, Any] | None):
    """The encoder workload of a job and its masks (`masks` given: used as they are)."""
    from codesign.workload import encoder_workload

    if masks is None and job.masks.kind == "file":
        masks = load_mask_file(job.masks.path)
    workload = encoder_workload(job.config, job.seq_len, job.batch,
                                mask_names=list(masks) if masks else None)
    if job.masks.kind == "dense":
        masks = _dense_masks(workload, job.masks.block)
    return workload, masks


def _columns(job: HardwareJob, report, masks: dict[str, Any] | None) -> dict[str, Any]:
    """The hardware columns of points.csv from a report (per-op rows not needed)."""
    res = report.resources or job.fit.resources
    latency = float(report.latency_ms)
    return {
        "latency_ms": latency,
        "energy_mj": float(report.energy_mj),
        "sequences_per_s": float(report.sequences_per_s),
        "utilization": float(report.utilization),
        "dsp_fraction": _fraction(res, "dsp"),
        "bram_fraction": _fraction(res, "bram"),
        "fits": bool(job.fit.fits),
        "compression": _compression(masks),
        "hw_source": f"simulated:{report.engine}/{report.engine_version}",
        "total_cycles": float(report.total_cycles),
        "dram_bytes": float(report.dram_bytes),
    }


def _compression(masks: dict[str, Any] | None) -> float:
    """All weights of the masked matrices / kept weights (1 without masks)."""
    kept = total = 0.0
    for m in (masks or {}).values():
        size = float(m.matrix_shape[0] * m.matrix_shape[1])
        total += size
        kept += m.density * size
    return total / kept if kept > 0 else (1.0 if not masks else math.inf)


def _fraction(resources: dict[str, Any], prefix: str) -> float:
    """The largest used fraction among the resources whose name starts with `prefix`."""
    best = math.nan
    for name, entry in resources.items():
        if str(name).lower().startswith(prefix):
            frac = entry.get("fraction") if isinstance(entry, dict) else getattr(
                entry, "fraction", None)
            if frac is not None:
                best = float(frac) if math.isnan(best) else max(best, float(frac))
    return best
