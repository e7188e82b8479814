"""`simulate(workload, accelerator, masks, engine) -> Report`: map every op, time it, price it.

Each GEMM runs in its own dataflow (`Accelerator.dataflow_of`, hwmodels.dataflow). The clock is
`hwmodels.resources.gather_clock_mhz` (the board's unless a wide crossbar gather derates it).
Ops run one after another (each op reads its operands from DRAM and writes its result back); with
`vector_overlap: fused` a GEMM's vector ops are overlapped with it (hwmodels.engines.fusion).
Masks attach to weight GEMMs by exact checkpoint parameter name. With `sparse_strategy: dense` a
mask is accepted but ignored (a dense accelerator multiplies the zeros). Under tile-skip and
compaction, whole attention heads and FFN neurons that the masks remove are dropped from the
workload (hwmodels.structure; `Report.structure` lists them, an op's `density` stays that of its
given mask; none removed: the report is unchanged). Identical unmasked ops
(attention matmuls, vector ops of every layer) are mapped and timed once per call.
"""
from __future__ import annotations

from typing import Mapping

from . import mapping, sweepcache
from .accelerator import Accelerator
from .energy import price
from .engines import ENGINES
from .engines import analytical as _analytical
from .engines.fusion import fused_timings
from .report import OpReport, Report, combine, op_report_of
from .resources import assess_fit, gather_clock_mhz
from .sparsity import BlockMask, gemm_blocks
from .structure import carry_structure
from .workload import GemmOp, VectorOp, Workload


def engine_time_fn(name: str):
    """The function that times one op's schedule under engine `name` (analytical or event)."""
    if name == "analytical":
        return _analytical.time_schedule
    if name == "event":
        from .engines import event

        return event.time_schedule
    raise ValueError(f"engine {name!r}: expected one of {', '.join(ENGINES)}")


def attach_masks(workload: Workload, masks: Mapping[str, BlockMask] | None) -> dict[str, BlockMask]:
    """Check that every mask names a weight op of the workload and fits its shape."""
    if not masks:
        return {}
    by_name = {op.weight_name: op for op in workload.gemms if op.weight_name}
    unknown = [k for k in masks if k not in by_name]
    if unknown:
        known = list(by_name)[:3]
        raise ValueError(
            f"{len(unknown)} mask name(s) match no op of workload {workload.name!r}, e.g. "
            f"{', '.join(unknown[:3])}; op weight names look like {', '.join(known)} "
            "(masks attach by exact checkpoint parameter name)")
    for key, mask in masks.items():
        op = by_name[key]
        if not isinstance(mask, BlockMask):
            raise ValueError(f"mask {key}: expected a hwmodels.BlockMask, got {type(mask).__name__}")
        if tuple(mask.matrix_shape) != (op.n, op.k):
            raise ValueError(
                f"mask {key}: matrix shape {mask.matrix_shape} (out, in) does not match the op's "
                f"weight ({op.n}, {op.k}) (out_features, in_features)")
    return dict(masks)


STRUCTURE_MODES = ("carry", "ignore")


def simulate(workload: Workload, accelerator: Accelerator,
             masks: Mapping[str, BlockMask] | None = None,
             engine: str = "analytical", *, structure: str = "carry") -> Report:
    """Simulate `workload` on `accelerator` (see the module docstring). `structure`: "carry"
    drops the heads and FFN neurons the masks remove entirely (hwmodels.structure); "ignore"
    simulates every op at its full size, as before structure was carried."""
    if structure not in STRUCTURE_MODES:
        raise ValueError(f"structure {structure!r}: use one of {', '.join(STRUCTURE_MODES)}")
    time_fn = engine_time_fn(engine)
    given = attach_masks(workload, masks)
    carried = carry_structure(workload, given, "dense" if structure == "ignore"
                              else accelerator.sparse_strategy)  # hwmodels.structure
    workload, attached = carried.workload, carried.masks
    acc = accelerator
    clock = gather_clock_mhz(acc)  # acc.clock_mhz unless a derated crossbar gather
    bpc = acc.dram_bytes_per_cycle_at(clock)
    skey = sweepcache.schedule_key(acc) if sweepcache.is_enabled() else None
    cache: dict[tuple, tuple] = {}
    mapped: list[tuple] = []  # (sched, timing, mask) per op
    masked = masked_schedules(workload.ops, acc, attached, skey)
    for op in workload.ops:
        mask = attached.get(op.weight_name) if isinstance(op, GemmOp) else None
        key = None
        if mask is None:
            key = (("gemm", op.m, op.k, op.n, op.count, op.kind, acc.dataflow_of(op))
                   if isinstance(op, GemmOp) else ("vec", op.kind, op.elements))
        hit = cache.get(key) if key else None
        if hit is None:
            sched = (masked[id(op)] if mask is not None
                     else op_schedule(op, acc, mask, skey, workload.name))
            timing = time_fn(sched, bpc, acc.double_buffering)
            hit = (sched, timing)
            if key:
                cache[key] = hit
        mapped.append((*hit, given.get(op.weight_name) if mask is not None else None))
    timings = [t for _, t, _ in mapped]
    if acc.vector_overlap == "fused":
        timings = fused_timings(workload.ops, [s for s, _, _ in mapped], timings)
    reports = op_reports(workload.ops, [(s, t, m) for (s, _, m), t in zip(mapped, timings)],
                         acc, clock)
    fit = fit_of(acc)
    return combine(workload=workload.name, batch=workload.batch, accelerator=acc.name,
                   engine=engine, engine_version=ENGINES[engine], clock_mhz=clock,
                   pe_macs=acc.pe_array.rows * acc.pe_array.cols, ops=reports,
                   resources=fit.as_dict(), fits=fit.fits,
                   structure=tuple(x.as_dict() for x in carried.layers))


def op_reports(ops, mapped: list[tuple], acc: Accelerator, clock_mhz: float) -> list[OpReport]:
    """The OpReport of every op with its (schedule, timing, mask). Ops that share all three
    (identical unmasked ops of every layer) share the figures: the first such op's row is
    computed, the others copy it with their own name, layer, role and weight name."""
    memo: dict[tuple, dict] = {}
    out = []
    for op, (sched, timing, mask) in zip(ops, mapped):
        key = (id(sched), id(timing), id(mask))
        row = memo.get(key)
        if row is None:
            row = memo[key] = _op_fields(op, sched, timing, mask, acc, clock_mhz)
            out.append(op_report_of(row))
            continue
        is_gemm = isinstance(op, GemmOp)
        out.append(op_report_of(dict(
            row, name=op.name, kind="gemm" if is_gemm else "vector", layer=op.layer,
            role=op.role if is_gemm else op.kind,
            weight_name=op.weight_name if is_gemm else None,
            shape=(op.m, op.k, op.n) if is_gemm else (op.elements,),
            buffer_accesses=dict(row["buffer_accesses"]), energy_pj=dict(row["energy_pj"]))))
    return out


def _op_fields(op, sched: mapping.Schedule, timing, mask, acc: Accelerator,
               clock_mhz: float) -> dict:
    """The fields of the op's OpReport, by name."""
    c = sched.count
    n = sched.counts * c if c != 1 else sched.counts  # all instances (x 1: the same values)
    peak = acc.pe_array.rows * acc.pe_array.cols * timing.total_cycles
    is_gemm = isinstance(op, GemmOp)
    return dict(
        name=op.name, kind="gemm" if is_gemm else "vector", layer=op.layer,
        role=op.role if is_gemm else op.kind,
        weight_name=op.weight_name if is_gemm else None,
        shape=(op.m, op.k, op.n) if is_gemm else (op.elements,), count=c,
        strategy=sched.strategy, dataflow=sched.dataflow,
        block_shape=str(mask.block_shape) if mask is not None else None,
        density=mask_density(mask) if mask is not None else 1.0,
        total_cycles=timing.total_cycles, compute_cycles=timing.compute_cycles,
        fill_drain_cycles=timing.fill_drain_cycles, stall_cycles=timing.stall_cycles,
        index_overhead_cycles=timing.index_overhead_cycles, vector_cycles=timing.vector_cycles,
        dram_bytes=sched.counts.dram_bytes * c, weight_bytes=n.weight_dram_bytes,
        input_bytes=n.input_dram_bytes, output_bytes=n.output_dram_bytes,
        index_bytes=n.index_dram_bytes, mandatory_dram_bytes=n.mandatory_dram_bytes,
        executed_macs=int(n.executed_macs), useful_macs=int(n.useful_macs),
        folds=int(n.folds), tiles_total=int(n.tiles_total), tiles_skipped=int(n.tiles_skipped),
        load_imbalance=float(sched.load_imbalance),
        utilization=(n.executed_macs / peak) if peak else 0.0,
        buffer_accesses=n.buffer_accesses(),
        energy_pj=op_energy_pj(sched, timing.total_cycles, acc.energy, clock_mhz),
    )


def mask_density(mask: BlockMask) -> float:
    """`mask.density`, memoised on the mask's GEMM-orientation view (the same integers:
    kept weights / all weights)."""
    memo = gemm_blocks(mask).memo
    hit = memo.get("density")
    if hit is None:
        hit = memo["density"] = mask.density
    return hit


def op_energy_pj(sched: mapping.Schedule, total_cycles, table, clock_mhz) -> dict:
    """The op's energy by component (all `sched.count` instances): the one call of
    `hwmodels.energy.price` for simulate and simulate_points (`total_cycles` and `clock_mhz`
    may be numpy arrays over design points sharing `table`)."""
    return price(sched.counts, table, instances=sched.count,
                 latency_us=total_cycles / clock_mhz)


def _gemm_key(op: GemmOp, acc: Accelerator, mask: BlockMask | None, skey) -> tuple:
    return ("gemm", op.m, op.k, op.n, op.count, op.kind, acc.dataflow_of(op),
            mask.content_key if mask is not None else None, skey)


def masked_schedules(ops, acc: Accelerator, masks: Mapping[str, BlockMask], skey) -> dict:
    """`op_schedule` of every GEMM of `ops` with a mask in `masks`, keyed by id(op): those not
    in the cache built together (`hwmodels.mapping.gemm_schedules`, one numpy call per step
    for all masks of one shape), each equal to the one built alone."""
    todo = [(op, masks[op.weight_name]) for op in ops
            if isinstance(op, GemmOp) and op.weight_name in masks]
    keys = [_gemm_key(op, acc, mask, skey) for op, mask in todo] if skey is not None else None
    out = {}
    miss = []
    for i, (op, _) in enumerate(todo):
        hit = sweepcache.SCHEDULES.peek(keys[i]) if keys is not None else None
        if hit is None:
            miss.append(i)
        out[id(op)] = hit
    built = mapping.gemm_schedules([todo[i][0] for i in miss], acc,
                                   [gemm_blocks(todo[i][1]) for i in miss])
    for i, sched in zip(miss, built):
        out[id(todo[i][0])] = sweepcache.SCHEDULES.put(keys[i], sched) if keys else sched
    return out


def op_schedule(op, acc: Accelerator, mask: BlockMask | None, skey, workload_name: str = ""):
    """The op's Schedule, from the bounded cache `hwmodels.sweepcache.SCHEDULES` under the op's
    shape, the mask's content and `skey` (= sweepcache.schedule_key(acc); None: no cache)."""
    if isinstance(op, GemmOp):
        def build():
            return mapping.gemm_schedule(op, acc, gemm_blocks(mask) if mask is not None else None)

        key = _gemm_key(op, acc, mask, skey)
    elif isinstance(op, VectorOp):
        def build():
            return mapping.vector_schedule(op, acc)

        key = ("vec", op.kind, op.elements, skey)
    else:
        raise ValueError(f"workload {workload_name}: unknown op type {type(op).__name__}")
    return build() if skey is None else sweepcache.SCHEDULES.get(key, build)


def fit_of(acc: Accelerator):
    """`assess_fit(acc)`, from the bounded cache `hwmodels.sweepcache.FITS`."""
    return sweepcache.FITS.get(acc, lambda: assess_fit(acc))


def gemm_workload(m: int, k: int, n: int, *, name: str = "gemm",
                  weight_name: str = "gemm.weight") -> Workload:
    """A one-GEMM workload (Y[m,n] = X[m,k] @ W[k,n]); its mask key is `weight_name`."""
    op = GemmOp(name=name, m=m, k=k, n=n, weight_name=weight_name)
    return Workload(name=f"{name} {m}x{k}x{n}", ops=(op,))
