"""`simulate_points(workload, accelerators, masks) -> [Report]`: many design points at once.

What is modelled: exactly what `hwmodels.simulate` computes with the analytical engine (whole
dead heads and FFN neurons carried through, as its default `structure="carry"`), for a list of
accelerators, returned as one `Report` per accelerator without its per-op rows
(`ops=()`): every total (cycles by kind, latency, bytes, MACs, utilisation, load imbalance,
buffer accesses, energy by component, resources, fit) equals simulate's bit for bit
(tests/hwmodels/test_speed_cache.py). How: points whose accelerators differ only in clock, DRAM
bandwidth, energy table, name or source (equal `sweepcache.timing_key`) share every op's
schedule; each op is mapped once per group (through the caches of hwmodels.sweepcache, which
also share the schedules of groups that differ in `vector_overlap` only) and
timed for all the group's bandwidths at once (engines.analytical.time_schedule_batch, with the
same floating-point operations in the same order as the per-point path), fused vector work
likewise (engines.fusion.fused_timings_batch), and priced once per energy table with the
latencies as arrays.

Ignored: the event engine has no batched form (engine="event" runs simulate per point and drops
the per-op rows).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from . import sweepcache
from .accelerator import Accelerator
from .engines import ENGINES
from .engines.analytical import time_schedule_batch
from .engines.fusion import fused_timings_batch
from .report import CYCLE_FIELDS, Report
from .resources import gather_clock_mhz
from .simulate import (attach_masks, fit_of, masked_schedules, op_energy_pj, op_schedule,
                       simulate)
from .sparsity import BlockMask
from .structure import carry_structure
from .workload import GemmOp, Workload


def simulate_points(workload: Workload, accelerators: Sequence[Accelerator],
                    masks: Mapping[str, BlockMask] | None = None,
                    engine: str = "analytical") -> list[Report]:
    """One Report (without per-op rows) per accelerator, in order (see the module docstring)."""
    accs = list(accelerators)
    if engine != "analytical":
        return [_without_ops(simulate(workload, a, masks, engine)) for a in accs]
    attached = attach_masks(workload, masks)
    groups: dict = {}
    for i, acc in enumerate(accs):
        groups.setdefault(sweepcache.timing_key(acc), []).append(i)
    out: list[Report | None] = [None] * len(accs)
    timed: dict = {}  # groups with the same schedules and bandwidths share their timings
    for idx in groups.values():
        reports = _group_reports(workload, [accs[i] for i in idx], attached, timed)
        for i, rep in zip(idx, reports):
            out[i] = rep
    return out  # type: ignore[return-value]


def _without_ops(report: Report) -> Report:
    from dataclasses import replace

    return replace(report, ops=())


def _group_timings(workload: Workload, acc: Accelerator, attached: dict, bpc: np.ndarray,
                   timed: dict) -> tuple[list, list]:
    """Every op's schedule and its Timing over the group's bandwidths (arrays of cycles);
    `timed` holds the timings already made in this call, (schedule, timing) under (id of the
    schedule, bandwidths, double buffering): the schedule is held, so its id stays its own."""
    schedules, timings = [], []
    bw = (bpc.tobytes(), acc.double_buffering)
    use_key = sweepcache.schedule_key(acc) if sweepcache.is_enabled() else None
    masked = masked_schedules(workload.ops, acc, attached, use_key)
    for op in workload.ops:
        mask = attached.get(op.weight_name) if isinstance(op, GemmOp) else None
        sched = (masked[id(op)] if mask is not None
                 else op_schedule(op, acc, mask, use_key, workload.name))
        key = (id(sched), *bw)
        hit = timed.get(key)
        if hit is None:
            hit = timed[key] = (sched, time_schedule_batch(sched, bpc, acc.double_buffering))
        t = hit[1]
        schedules.append(sched)
        timings.append(t)
    if acc.vector_overlap == "fused":
        timings = fused_timings_batch(workload.ops, schedules, timings)
    return schedules, timings


def _group_reports(workload: Workload, accs: list[Accelerator], attached: dict,
                   timed: dict) -> list[Report]:
    """Reports of points with equal timing keys (the sums of simulate's `combine`, per op in
    workload order, on arrays over the points)."""
    acc0 = accs[0]
    # as simulate: the heads and FFN neurons the masks remove entirely are dropped (the sparse
    # strategy, part of the timing key, decides)
    carried = carry_structure(workload, attached, acc0.sparse_strategy)
    workload, attached = carried.workload, carried.masks
    structure = tuple(x.as_dict() for x in carried.layers)
    clocks = [gather_clock_mhz(a) for a in accs]  # as simulate: a derated crossbar's clock
    bpc = np.array([a.dram_bytes_per_cycle_at(c) for a, c in zip(accs, clocks)])
    clock = np.array(clocks, np.float64)
    schedules, timings = _group_timings(workload, acc0, attached, bpc, timed)
    sums = {f: 0 for f in CYCLE_FIELDS}
    dram = index = 0
    executed = useful = 0
    buf: dict[str, float] = {}
    imbalance = []
    for sched, t in zip(schedules, timings):
        n = sched.counts * sched.count
        for f in CYCLE_FIELDS:
            sums[f] = sums[f] + getattr(t, f)
        dram = dram + sched.counts.dram_bytes * sched.count
        index = index + n.index_dram_bytes
        executed += int(n.executed_macs)
        useful += int(n.useful_macs)
        for k, v in n.buffer_accesses().items():
            buf[k] = buf.get(k, 0.0) + v
        imbalance.append(float(sched.load_imbalance))
    energy = _energy(schedules, timings, accs, clock)
    pe_macs = acc0.pe_array.rows * acc0.pe_array.cols
    cols = {f: np.broadcast_to(np.asarray(v, np.float64), bpc.shape).tolist()
            for f, v in sums.items()}
    out = []
    for p, acc in enumerate(accs):
        total = cols["total_cycles"][p]
        peak = pe_macs * total
        fit = fit_of(acc)
        out.append(Report(
            workload=workload.name, batch=workload.batch, accelerator=acc.name,
            engine="analytical", engine_version=ENGINES["analytical"], clock_mhz=clocks[p],
            pe_macs=pe_macs, total_cycles=total, latency_ms=total / (clocks[p] * 1e3),
            compute_cycles=cols["compute_cycles"][p],
            fill_drain_cycles=cols["fill_drain_cycles"][p],
            stall_cycles=cols["stall_cycles"][p],
            index_overhead_cycles=cols["index_overhead_cycles"][p],
            vector_cycles=cols["vector_cycles"][p], dram_bytes=float(dram),
            index_bytes=float(index), executed_macs=executed, useful_macs=useful,
            utilization=executed / peak if peak else 0.0,
            effective_utilization=useful / peak if peak else 0.0,
            load_imbalance=max(imbalance, default=1.0), buffer_accesses=dict(buf),
            energy_pj=energy[p], resources=fit.as_dict(), fits=fit.fits, ops=(),
            structure=structure))
    return out


def _energy(schedules: list, timings: list, accs: list[Accelerator],
            clock: np.ndarray) -> list[dict[str, float]]:
    """Energy by component per point: every op priced once per distinct energy table, with the
    op's cycles and the clocks of that table's points as arrays, summed in workload order."""
    by_table: dict = {}
    for p, acc in enumerate(accs):
        by_table.setdefault(acc.energy, []).append(p)
    out: list[dict[str, float]] = [{} for _ in accs]
    for table, pts in by_table.items():
        sel = np.asarray(pts)
        energy: dict[str, object] = {}
        for sched, t in zip(schedules, timings):
            cyc = np.broadcast_to(np.asarray(t.total_cycles, np.float64), clock.shape)[sel]
            for k, v in op_energy_pj(sched, cyc, table, clock[sel]).items():
                energy[k] = energy.get(k, 0.0) + v
        cols = {k: np.broadcast_to(np.asarray(v, np.float64), sel.shape).tolist()
                for k, v in energy.items()}
        for q, p in enumerate(pts):
            out[p] = {k: c[q] for k, c in cols.items()}
    return out
