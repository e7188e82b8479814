"""Per-matrix cost lookup: a workload's simulated cycles as a function of each matrix's kept blocks.

What is modelled. `simulate` sums one total per op, and an op's total depends on its own mask
only, except that with `vector_overlap: fused` the vector ops of a fusion group (a GEMM and the
vector ops after it) show cycles that depend on that GEMM's schedule. So the whole-model total is
a constant (the groups without a mask) plus, per prunable matrix, the cycles of its group (its
GEMM and the vector ops fused behind it), a function of that matrix's mask alone. `CostTable`
holds that decomposition, built once per (accelerator, workload, block shape):

* `group_cycles(name, mask)` / `latency_cycles(masks)`: the exact figures, computed with the very
  functions `simulate` calls (`simulate.op_schedule`, the engine's `time_schedule`,
  `engines.fusion.fuse_group`; schedules from `sweepcache.SCHEDULES`) and memoised per mask
  content; `latency_cycles` sums the per-op cycles in the workload's op order, as
  `report.combine` does, so it equals `simulate(workload, acc, masks,
  structure="ignore").total_cycles` exactly
  (tests/hwmodels/test_costs.py). A matrix without a mask is costed as `simulate` costs it (the
  dense path).
* the *units* of saving the allocation search works in (`MatrixCosts`), which follow the sparse
  strategy's mechanics: under `tile-skip` a unit is one skip tile (ws: an R x C weight tile; os:
  a block row of a C-column slab) and saves only once every block intersecting it is removed;
  under `compact` a unit is one level of a PE-column group (the C output features of a column
  tile): its time is set by its most loaded block row (the longest packed K), so a unit is
  lowering that maximum by one step (ws: R K positions = one fold; os: one block width). The
  cycles one unit saves (`unit_cycles`) are a per-matrix slope measured with the exact figures
  (all blocks kept vs. about half the units removed). The slope is an estimate (DRAM stalls,
  fill/drain and index cycles do not scale exactly with the units); searches use it to rank
  moves and check every candidate with the exact figures.

Ignored: the heads and FFN neurons that masks remove entirely (hwmodels.structure): a table
prices the full-size workload, as `simulate(..., structure="ignore")` does, so it never
under-estimates a mask's cycles (callers that report a latency re-simulate the masks:
codesign.pruning.allocation); `sparse_strategy: dense` has no unit of saving (pruning does not
change its cycles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from . import sweepcache
from .accelerator import Accelerator
from .engines.fusion import fuse_group, fusion_groups
from .resources import gather_clock_mhz
from .simulate import attach_masks, engine_time_fn, op_schedule
from .sparsity import (BlockMask, BlockShape, column_tile_packing, gemm_blocks,
                       tile_occupancy)
from .workload import GemmOp, Workload

UNIT_KINDS = ("tile", "level")


@dataclass(frozen=True)
class MatrixCosts:
    """One prunable matrix: its place in the workload and its unit of saving.

    Spans are in the parameter's orientation (out, in). `unit_out` x `unit_in` is the footprint
    of one unit: a skip tile (kind "tile") or a column group of `unit_out` output features (kind
    "level", `unit_in` = the full input width); `level_step` is the packed-K step of one level
    (compact only, 0 otherwise)."""

    name: str
    op_index: int
    group: tuple[int, int]  # ops[i:j]: the GEMM and the vector ops fused behind it
    matrix_shape: tuple[int, int]
    kind: str  # "tile" or "level"
    unit_out: int
    unit_in: int
    level_step: int
    unit_cycles: float  # estimated cycles one unit saves (slope, see the module docstring)
    all_kept_cycles: float  # group cycles with every block kept
    dense_cycles: float  # group cycles without a mask (what simulate does for no mask)


def block_spans(total: int, span: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """For each span of `span` elements along an axis of `total`, the half-open range [lo, hi)
    of the `block`-sized blocks that intersect it (a block straddling two spans is in both)."""
    n = math.ceil(total / span)
    starts = np.arange(n, dtype=np.int64) * span
    ends = np.minimum(starts + span, total)
    return starts // block, -(-ends // block)


def unit_members(costs: MatrixCosts, block_shape: BlockShape) -> list[np.ndarray]:
    """Per unit (row-major over the unit grid), the flat indices of the blocks (in the mask
    grid, row-major) that intersect it. "level" units list their block rows' blocks."""
    out, inp = costs.matrix_shape
    bh, bw = block_shape
    ncols = math.ceil(inp / bw)
    rlo, rhi = block_spans(out, costs.unit_out, bh)
    clo, chi = block_spans(inp, costs.unit_in, bw)
    members = []
    for r0, r1 in zip(rlo, rhi):
        rows = np.arange(r0, r1)
        for c0, c1 in zip(clo, chi):
            cols = np.arange(c0, c1)
            members.append((rows[:, None] * ncols + cols[None, :]).ravel())
    return members


@dataclass(frozen=True, eq=False)
class CostTable:
    """The cost lookup of one (accelerator, workload, block shape): see the module docstring.
    `fixed` holds the per-op cycles of every op outside a masked group (None inside one)."""

    accelerator: Accelerator
    workload: Workload
    block_shape: BlockShape
    engine: str
    matrices: dict[str, MatrixCosts]
    fixed: tuple[float | None, ...]
    _memo: dict = field(default_factory=dict, repr=False)

    def group_cycles(self, name: str, mask: BlockMask | None) -> tuple[float, ...]:
        """Per-op cycles of the matrix's group (its GEMM first) with `mask` (None: no mask)."""
        key = (name, None if mask is None else mask.content_key)
        hit = self._memo.get(key)
        if hit is None:
            m = self.matrices[name]
            hit = self._memo[key] = _group_cycles(self.workload, self.accelerator, m.group,
                                                  mask, self.engine)
        return hit

    def cycles_of(self, name: str, mask: BlockMask | None) -> float:
        """The matrix group's cycles summed (its share of the total)."""
        return float(sum(self.group_cycles(name, mask)))

    def latency_cycles(self, masks: Mapping[str, BlockMask] | None = None) -> float:
        """Whole-workload cycles with `masks`: equal to simulate(...).total_cycles (exactly: the
        same per-op figures summed in the same order)."""
        masks = attach_masks(self.workload, masks)
        per_op = list(self.fixed)
        for name, m in self.matrices.items():
            i, j = m.group
            per_op[i:j] = self.group_cycles(name, masks.get(name))
        return float(sum(per_op))

    def latency_ms(self, masks: Mapping[str, BlockMask] | None = None) -> float:
        return self.cycles_to_ms(self.latency_cycles(masks))

    def cycles_to_ms(self, cycles: float) -> float:
        return cycles / (gather_clock_mhz(self.accelerator) * 1e3)

    def ms_to_cycles(self, ms: float) -> float:
        return float(ms) * gather_clock_mhz(self.accelerator) * 1e3

    def units(self, name: str) -> list[np.ndarray]:
        """`unit_members` of one matrix (memoised)."""
        key = ("units", name)
        if key not in self._memo:
            self._memo[key] = unit_members(self.matrices[name], self.block_shape)
        return self._memo[key]


def _group_cycles(workload: Workload, acc: Accelerator, group: tuple[int, int],
                  mask: BlockMask | None, engine: str) -> tuple[float, ...]:
    """The per-op total cycles of ops[i:j] as `simulate` computes them."""
    time_fn = engine_time_fn(engine)
    skey = sweepcache.schedule_key(acc) if sweepcache.is_enabled() else None
    bpc, db = acc.dram_bytes_per_cycle_at(gather_clock_mhz(acc)), acc.double_buffering
    i, j = group
    ops = workload.ops[i:j]
    scheds = [op_schedule(op, acc, mask if k == 0 else None, skey, workload.name)
              for k, op in enumerate(ops)]
    timings = [time_fn(s, bpc, db) for s in scheds]
    if acc.vector_overlap == "fused" and j > i + 1:
        timings[1:] = fuse_group(scheds[0], timings[0], ops[1:], timings[1:])
    return tuple(t.total_cycles for t in timings)


def _groups(workload: Workload) -> dict[int, tuple[int, int]]:
    """GEMM op index -> its fusion group [i, j) (j = i + 1 when no vector op follows)."""
    found = {i: (i, j) for i, j in fusion_groups(workload.ops)}
    return {i: found.get(i, (i, i + 1)) for i, op in enumerate(workload.ops)
            if isinstance(op, GemmOp)}


def _unit_geometry(acc: Accelerator, block_shape: BlockShape,
                   op: GemmOp) -> tuple[str, int, int, int]:
    """(kind, unit_out, unit_in, level_step) of the accelerator's sparse strategy."""
    R, C = acc.pe_array.rows, acc.pe_array.cols
    bh, bw = block_shape
    if acc.sparse_strategy == "tile-skip":
        # GEMM tile (K = in, N = out): ws R x C; os one block row (bk = bw) x C columns
        return "tile", C, (R if acc.dataflow_of(op) == "ws" else bw), 0
    if acc.sparse_strategy == "compact":
        return "level", C, op.k, (R if acc.dataflow_of(op) == "ws" else bw)
    raise ValueError(f"sparse_strategy {acc.sparse_strategy!r}: a dense accelerator gains "
                     "nothing from pruning; use tile-skip or compact (--set sparse_strategy=...)")


def units_removed(mask: BlockMask, m: MatrixCosts) -> float:
    """Units of saving the mask has taken (tiles emptied, or levels lowered, summed over the
    column groups) relative to all blocks kept."""
    gb = gemm_blocks(mask)
    if m.kind == "tile":
        occ = tile_occupancy(gb, m.unit_in, m.unit_out)
        return float(occ.size - occ.sum())
    full = BlockMask.dense(mask.block_shape, mask.matrix_shape)
    levels = [np.ceil(column_tile_packing(gemm_blocks(x), m.unit_out).packed_k / m.level_step)
              for x in (full, mask)]
    return float((levels[0] - levels[1]).sum())


def _half_mask(m: MatrixCosts, block_shape: BlockShape) -> BlockMask:
    """A mask with about half the units removed: every other tile emptied ("tile"), or the
    second half of every block row's blocks removed ("level")."""
    full = BlockMask.dense(block_shape, m.matrix_shape)
    grid = full.grid.copy()
    if m.kind == "tile":
        flat = grid.ravel()
        for u, members in enumerate(unit_members(m, block_shape)):
            if u % 2 == 0:
                flat[members] = False
        grid = flat.reshape(grid.shape)
    else:
        grid[:, (grid.shape[1] + 1) // 2:] = False
        if grid.shape[1] == 1:
            grid[::2] = False
    return BlockMask(grid, block_shape, m.matrix_shape)


def build_costs(workload: Workload, accelerator: Accelerator, block_shape: "BlockShape | str",
                *, engine: str = "analytical") -> CostTable:
    """The cost lookup of every weight GEMM of `workload` (see the module docstring)."""
    shape = BlockShape.parse(block_shape)
    engine_time_fn(engine)  # a bad engine name fails here, in one line
    groups = _groups(workload)
    matrices: dict[str, MatrixCosts] = {}
    fixed: list[float | None] = [None] * len(workload.ops)
    table = CostTable(accelerator, workload, shape, engine, matrices, tuple(fixed))
    for idx, op in enumerate(workload.ops):
        if not (isinstance(op, GemmOp) and op.weight_name):
            continue
        kind, u_out, u_in, step = _unit_geometry(accelerator, shape, op)
        m = MatrixCosts(name=op.weight_name, op_index=idx, group=groups[idx],
                        matrix_shape=(op.n, op.k), kind=kind, unit_out=u_out, unit_in=u_in,
                        level_step=step, unit_cycles=0.0, all_kept_cycles=0.0, dense_cycles=0.0)
        matrices[m.name] = m
        full = BlockMask.dense(shape, m.matrix_shape)
        half = _half_mask(m, shape)
        kept_c, half_c = table.cycles_of(m.name, full), table.cycles_of(m.name, half)
        removed = units_removed(half, m)
        slope = (kept_c - half_c) / removed if removed > 0 else 0.0
        matrices[m.name] = MatrixCosts(**{**vars(m), "unit_cycles": max(slope, 0.0),
                                          "all_kept_cycles": kept_c,
                                          "dense_cycles": table.cycles_of(m.name, None)})
    masked = np.zeros(len(workload.ops), bool)
    for m in matrices.values():
        masked[m.group[0]:m.group[1]] = True
    fixed = _fixed_cycles(workload, accelerator, engine, masked)
    return CostTable(accelerator, workload, shape, engine, matrices, fixed, table._memo)


def _fixed_cycles(workload: Workload, acc: Accelerator, engine: str,
                  masked: np.ndarray) -> tuple[float | None, ...]:
    """Per-op cycles of the ops outside masked groups (None inside them)."""
    out: list[float | None] = [None] * len(workload.ops)
    groups = {i: (i, j) for i, j in fusion_groups(workload.ops)}
    i = 0
    while i < len(workload.ops):
        i0, j = groups.get(i, (i, i + 1))
        if not masked[i0]:
            out[i0:j] = _group_cycles(workload, acc, (i0, j), None, engine)
        i = j
    return tuple(out)


__all__ = ["UNIT_KINDS", "MatrixCosts", "CostTable", "build_costs", "block_spans",
           "unit_members", "units_removed"]
