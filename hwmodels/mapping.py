"""Mapping of one op onto the accelerator: the fold schedule both engines execute.

A *fold* is one use of the R x C PE array. `gemm_schedule` lists the folds of a GEMM in execution
order with, per fold, the cycles of the array (streaming, fill/drain, index overhead) and the DRAM
bytes the DMA must bring in before it (weights, inputs, indices) and write out after it (outputs).
The engines only differ in how they overlap those transfers with compute. Each GEMM runs in
its own dataflow, `acc.dataflow_of(op)` (one for all, or a plan per op type: hwmodels.dataflow).

Weight stationary (ws), following SCALE-Sim 3.0's counting exactly (checked against SCALE-Sim
runs, see docs/validation.md): a fold holds an R(K) x C(N) weight tile; per fold R cycles of weight preload, M cycles of
streaming X rows, R-1 cycles of input skew (fill) and C-1 cycles of partial-sum drain, i.e.
``2R + C + M - 2``; folds = ceil(K/R) * ceil(N/C); edge folds pay the full fill/drain. We report
M per fold as *compute* and 2R + C - 2 as *fill/drain*. SCALE-Sim reports the index of the last
cycle, so its figure is ours minus 1 per GEMM.
Output stationary (os): a fold holds an R(M) x C(N) output tile and streams K; per fold
``K + R + C - 2`` (K compute, R + C - 2 fill/drain skew; SCALE-Sim does not charge a separate
output drain); folds = ceil(M/R) * ceil(N/C).
The two counts above are `weight_preload: serial`, SCALE-Sim's. `weight_preload: overlapped`
(double-buffered PE registers, as TPU-style arrays do) keeps the stream of the array going from
one fold to the next; see `pipeline_fill` for its closed form. The bytes moved are the same in
both modes.

Loop order and memory (ws): m-chunk > column tile j > k tile i. The output buffer holds the
int32 partial sums of one column tile for `m_chunk` rows; when M x C partial sums exceed the usable
output buffer, M is split into chunks (each chunk re-streams the weights unless the whole W fits
the weight buffer). X is resident when M_chunk x K fits the usable input buffer (loaded once, in
the first column tile that needs each k slice), otherwise re-fetched for every column tile.
(os): row tile a > column tile j; X[a] rows are resident across j if R x K fits the input buffer,
W is resident across row tiles if the whole (kept) W fits the weight buffer, else it is re-fetched
per row tile. Bytes per element (`Accelerator.w_operand_bytes`, `operand_bytes`): W at the
weight precision in weight GEMMs (0.5 byte at 4 bits: a 16x16 block is 128 bytes + its index),
at the activation precision in the attention GEMMs; X and outputs at the activation precision.
Outputs are written once at operand precision (no partial-sum spills: ws chunks M
instead; os accumulates in the PEs). Usable capacity is half the buffer with double buffering.

Block sparsity (mask in GEMM orientation, see sparsity.py):
* tile-skip: a fold's R x C weight tile (ws), or a block row (bk K steps) of a column slab (os:
  PE rows hold M, so the skip unit along K is the mask's block height, not R), is skipped -
  neither fetched nor computed - only when every block intersecting it is zero. Kept tiles are
  fetched and computed densely (zeros inside them included). The skip flags themselves (one bit
  per ws tile, or per os block row and slab) are not charged.
* compact: kept blocks are packed along K per block column, each block column of a column tile
  gets its own PE column group and gathered input stream, and the longest packed column sets the
  tile's K length (ws: ceil(K_j / R) folds; os: K_j streamed). Load imbalance =
  sum_j max packed K / sum_j mean packed K (time lost to unequal groups, not averaged away).
  Indices are stored in the accelerator's `index_format` (sparsity.IndexFormat: block indices,
  bitmaps or N:M offsets), fetched with the weights and occupy the weight buffer; a block column
  spanning several column tiles has its indices fetched once, with the first. The index decoder
  reads one 64-bit word per cycle, overlapped with the weight preload (ws) or the stream (os);
  only the excess is charged as index-overhead cycles. Indices that stay on chip with the
  weights (W resident) are decoded in the first pass only (first M chunk / row tile).
* A mask with every block kept through tile-skip gives the dense schedule exactly; through
  compact it gives the dense fold structure plus index bytes (and index cycles, if any).

The fold structure of one pass over W (tile occupancy, packing, index layout per array shape)
is built in hwmodels.folds and cached there; this module adds M chunking, residency and the
pipeline.

Ignored: bank conflicts inside buffers, DRAM page effects (in the sustained bandwidth), bias
loads, requantisation cost, the input-gather crossbar's own timing (assumed one word per cycle per
group).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .accelerator import Accelerator
from .actions import ActionCounts
from .frozen import derived, make
from .folds import (INDEX_PORT_BYTES, OsSlabs, WsFolds,  # noqa: F401 (INDEX_PORT_BYTES)
                    pass_structures)
from .pipeline import pipeline_fill
from .sparsity import GemmBlocks, _edge_sizes, _read_only, dense_gemm_blocks
from .workload import GemmOp, VectorOp

VECTOR_CHUNK_ELEMENTS = 8192  # a vector op streams through the buffers in chunks of this size


@dataclass(frozen=True, eq=False)
class Schedule:
    """Per-fold arrays of one instance of the op (the engines repeat it `count` times), its
    action counts per instance, and how its operands occupy the buffers."""

    kind: str  # "gemm" or "vector"
    count: int
    stream: np.ndarray  # cycles of useful streaming per fold (vector: vector-unit cycles)
    fill: np.ndarray  # fill/drain (+ weight preload) cycles per fold
    index: np.ndarray  # index-overhead cycles per fold
    weight_load: np.ndarray  # DRAM bytes of weights (+ indices) to bring in before the fold
    input_load: np.ndarray  # DRAM bytes of inputs to bring in before the fold
    store_bytes: np.ndarray  # DRAM bytes to write after the fold
    counts: ActionCounts  # per instance
    strategy: str  # "dense", "tile-skip" or "compact"
    dataflow: str  # "ws", "os" or "vector"
    #: compaction: sum_j max packed K / sum_j mean packed K over column tiles (1 otherwise)
    load_imbalance: float = 1.0
    #: False when the whole operand stays in its buffer (no ping-pong slot cycling): loads of it
    #: may run arbitrarily far ahead. True: each load occupies one of the two halves (one with
    #: double buffering off) until the last fold that uses it (the folds up to the next load).
    weight_slots: bool = True
    input_slots: bool = True
    #: GEMMs: True for a fold after which a group of complete output rows exists (ws: the end
    #: of an M chunk; os: the last column tile of a row tile); row-wise vector work fused behind
    #: the GEMM waits for it (hwmodels.engines.fusion). None for vector ops.
    row_ends: np.ndarray | None = None

    @property
    def load_bytes(self) -> np.ndarray:
        return self.weight_load + self.input_load

    @property
    def folds(self) -> int:
        """Uses of the array (store-only pseudo-folds of an all-skipped column tile excluded)."""
        return int(np.count_nonzero(self.stream + self.fill + self.index))

    @property
    def busy(self) -> np.ndarray:
        """Cycles the PE array (or vector unit) is occupied per fold."""
        return self.stream + self.fill + self.index

    def repeated(self, *names: str) -> tuple[np.ndarray, ...]:
        """The named per-fold arrays over all `count` instances, run one after another."""
        arrays = tuple(getattr(self, name) for name in names)
        if self.count == 1:
            return arrays
        return tuple(np.tile(x, self.count) for x in arrays)

    # Derived once per schedule and shared by the engines and fused vector work (a schedule is
    # immutable; a cached schedule serves every design point that shares it).
    @derived
    def busy_counts(self) -> np.ndarray:
        """`busy` over all `count` instances, in the arrays' own dtype (integers: exact)."""
        busy = self.stream + self.fill + self.index
        return _read_only(busy if self.count == 1 else np.tile(busy, self.count))

    @derived
    def busy_cycles(self) -> np.ndarray:
        """float64: `busy` over all `count` instances (what the engines time)."""
        return _read_only(self.busy_counts.astype(np.float64))

    @derived
    def busy_cumsum(self) -> np.ndarray:
        """float64: the running sum of `busy_cycles` (exact: whole cycle counts, checked).
        Taken over the integers when every running sum is a float exactly (non-negative
        cycles summing to at most 2**53: each float addition is then exact, so the values
        are those of the float running sum)."""
        if any(x.dtype.kind not in "iub" for x in (self.stream, self.fill, self.index)):
            raise TypeError("Schedule: stream, fill and index must be integer cycle counts")
        counts = self.busy_counts
        if counts.size:
            cum = counts.cumsum()
            if cum[-1] <= 2 ** 53 and counts.min() >= 0:
                return _read_only(cum.astype(np.float64))
        return _read_only(self.busy_cycles.cumsum())

    @derived
    def work_sums(self) -> tuple[float, float, float, float]:
        """(busy, stream, fill/drain, index) cycles over all instances, as floats: whole cycle
        counts summed exactly (as integers), so equal to summing the repeated arrays."""
        parts = [_sum_repeated(x, self.count) for x in (self.stream, self.fill, self.index)]
        if any(x.dtype.kind not in "iub" for x in (self.stream, self.fill, self.index)):
            return (float(self.busy_cycles.sum()), *map(float, parts))
        return (float(parts[0] + parts[1] + parts[2]), *map(float, parts))

    @derived
    def store_folds(self) -> np.ndarray:
        """Indices (over all instances) of the folds that store output bytes (ws GEMMs of
        one instance: set by the mapping from the fold structure, the same indices)."""
        (store,) = self.repeated("store_bytes")
        return _read_only(store.nonzero()[0])


def _sum_repeated(x: np.ndarray, count: int):
    """`np.tile(x, count).sum()`: for integers `x.sum() * count` (the same integer)."""
    if count == 1 or x.dtype.kind not in "iub":
        return (x if count == 1 else np.tile(x, count)).sum()
    return x.sum() * count


def _strategy(acc: Accelerator, gb: GemmBlocks | None) -> str:
    return "dense" if gb is None or acc.sparse_strategy == "dense" else acc.sparse_strategy


def gemm_schedule(op: GemmOp, acc: Accelerator, gb: GemmBlocks | None = None) -> Schedule:
    """The fold schedule of one instance of `op` (a mask `gb` in GEMM orientation, or None)."""
    return gemm_schedules([op], acc, [gb])[0]


def gemm_schedules(ops: Sequence[GemmOp], acc: Accelerator,
                   gbs: Sequence[GemmBlocks | None]) -> list[Schedule]:
    """`gemm_schedule` of every op with its mask; the passes over W are built together
    (`hwmodels.folds.pass_structures`: one numpy call per step for all masks of one shape)."""
    for op, gb in zip(ops, gbs):
        if gb is not None and (gb.k, gb.n) != (op.k, op.n):
            raise ValueError(f"op {op.name}: mask covers W[{gb.k},{gb.n}] but the op has "
                             f"W[{op.k},{op.n}] (K = in_features, N = out_features)")
    plans = []
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (op, gb) in enumerate(zip(ops, gbs)):
        strategy = _strategy(acc, gb)
        if strategy == "dense":
            gb = dense_gemm_blocks(op.k, op.n)
        dataflow = acc.dataflow_of(op)  # a dataflow per op type: hwmodels.dataflow
        plans.append((gb, strategy, dataflow))
        groups.setdefault((strategy, dataflow), []).append(i)
    passes: list = [None] * len(plans)
    for (strategy, dataflow), idx in groups.items():
        built = pass_structures([plans[i][0] for i in idx], strategy, acc, dataflow,
                                [acc.w_operand_bytes(ops[i].kind) for i in idx])
        for i, f in zip(idx, built):
            passes[i] = f
    return [(_ws if dataflow == "ws" else _os)(op, acc, gb, strategy, f)
            for op, (gb, strategy, dataflow), f in zip(ops, plans, passes)]


def _decode_once(index: np.ndarray, passes: int, resident: bool) -> np.ndarray:
    """Index cycles of one pass over W repeated `passes` times (ws M chunks): indices that stay
    on chip with the weights (`resident`) are decoded in the first pass only; the decoded gather
    addresses (one per index entry, no larger than a block index) are kept for the others."""
    if passes == 1:
        return index  # (schedules never write their arrays: shared with the cached folds)
    if not resident:
        return np.tile(index, passes)
    return np.concatenate([index, np.zeros(index.size * (passes - 1), np.int64)])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The M chunks' per-fold arrays one after another (one chunk: that array itself)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# --------------------------------------------------------------------------- weight stationary
def _ws_input_load(f: WsFolds, rows: int, x_cap: int, ob: int) -> tuple[np.ndarray, bool]:
    """DRAM bytes of X before each fold for an M chunk of `rows` rows; True if X is resident."""
    if rows * f.used_k_total * ob <= x_cap:
        if f.compact:
            return f.x_resident * (rows * f.used_k_total * ob), True
        return (f.x_resident * rows * ob if ob != 1 else f.x_resident * rows), True  # (x 1)
    return f.x_stream_k * (rows * ob), False


def _ws(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str, f: WsFolds) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob, ab = acc.operand_bytes, acc.accumulator_bytes
    M, K, N = op.m, op.k, op.n
    x_cap = acc.usable_bytes(acc.input_buffer)
    n_len = _edge_sizes(N, C)
    m_lens = [int(ml) for ml in _edge_sizes(M, max(1, min(M, acc.usable_bytes(
        acc.output_buffer) // (C * ab))))]
    nch = len(m_lens)
    # the last entry of each column tile carries that tile's output store
    store_unit = np.zeros(f.entries)  # bytes per streamed row
    store_unit[f.tile_last] = n_len * ob
    if nch == 1:  # (store_unit * M: the same products, at the storing entries only)
        store = np.zeros(f.entries)
        store[f.tile_last] = store_unit[f.tile_last] * M
    else:
        store = np.concatenate([store_unit * ml for ml in m_lens])
    w_once = float(f.w_load.sum())
    w_resident = nch > 1 and w_once <= acc.usable_bytes(acc.weight_buffer)
    w_parts, x_parts = [], []
    x_resident_any = False
    w_bytes = x_bytes = 0.0  # summed chunk by chunk (the order of the float additions kept)
    for c, ml in enumerate(m_lens):
        x_load, resident = _ws_input_load(f, ml, x_cap, ob)
        x_resident_any = x_resident_any or resident
        fetch = c == 0 or not w_resident
        w_parts.append(f.w_load if fetch else np.zeros_like(f.w_load))
        w_bytes += w_once if fetch else 0.0
        x_parts.append(x_load)
        x_bytes += float(x_load.sum())
    stream = (f.real * M if nch == 1 else np.concatenate([f.real * ml for ml in m_lens]))
    idx_bytes = f.index_bytes * (nch if not w_resident else 1)
    out_bytes = M * N * ob
    psum_cols, first_cols = f.psum_cols, f.first_cols
    counts = make(  # = ActionCounts(...), every field given
        ActionCounts, executed_macs=M * f.exec_elems, useful_macs=M * gb.kept_weights,
        dense_macs=M * K * N, vector_element_passes=0,
        weight_dram_bytes=w_bytes - idx_bytes, index_dram_bytes=idx_bytes,
        input_dram_bytes=x_bytes, output_dram_bytes=float(out_bytes),
        mandatory_dram_bytes=float(w_once + M * f.used_k_total * ob + out_bytes),
        weight_buffer_read_bytes=float(f.w_read_bytes * nch), weight_buffer_write_bytes=w_bytes,
        input_buffer_read_bytes=float(M * f.in_read_k * ob), input_buffer_write_bytes=x_bytes,
        # partial sums: read-modify-write per fold (the first fold of a tile writes only) and
        # the final read-out
        output_buffer_read_bytes=float(M * ab * (psum_cols - first_cols) + out_bytes),
        output_buffer_write_bytes=float(M * ab * psum_cols),
        folds=f.n_real * nch, tiles_total=f.tiles_total * nch,
        tiles_skipped=f.tiles_skipped * nch)
    real_all = f.real if nch == 1 else np.tile(f.real, nch)
    row_ends = np.zeros(real_all.size, bool)
    row_ends[np.arange(1, nch + 1) * f.entries - 1] = True  # the end of each M chunk
    fill = pipeline_fill(stream, real_all, R, C, "ws", acc.weight_preload,
                         min_stream=min(m_lens))
    index = _decode_once(f.index.astype(np.int64, copy=False), nch, w_resident)
    sched = make(  # = Schedule(...), every field given
        Schedule, kind="gemm", count=op.count, stream=stream, fill=fill, index=index,
        weight_load=_joined(w_parts), input_load=_joined(x_parts),
        store_bytes=store, counts=counts,
        strategy=strategy, dataflow="ws", load_imbalance=f.load_imbalance,
        weight_slots=not w_resident, input_slots=not (x_resident_any and nch == 1),
        row_ends=row_ends)
    if op.count == 1:  # the storing folds: each chunk's column tiles' last entries (all > 0)
        sched.__dict__["store_folds"] = _read_only(
            f.tile_last if nch == 1 else
            np.concatenate([f.tile_last + c * f.entries for c in range(nch)]))
        # the integer sums of `work_sums`: every chunk streams its rows through each fold
        parts = (M * f.n_real, fill.sum(), index.sum() if f.compact else 0)  # (else 0s)
        sched.__dict__["work_sums"] = (float(parts[0] + parts[1] + parts[2]),
                                       *map(float, parts))
        if not f.compact:  # Schedule.busy_counts, without adding the zero index cycles
            sched.__dict__["busy_counts"] = _read_only(stream + fill)
    return sched


# --------------------------------------------------------------------------- output stationary
def _os(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str, sl: OsSlabs) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob = acc.operand_bytes
    M, K, N = op.m, op.k, op.n
    r_len, n_len = _edge_sizes(M, R), _edge_sizes(N, C)
    nMt, nNt = r_len.size, n_len.size
    w_total = float(sl.w_bytes.sum())
    w_resident = nMt > 1 and w_total <= acc.usable_bytes(acc.weight_buffer)
    aa = np.repeat(np.arange(nMt), nNt)  # row tile a > column tile j
    jj = np.tile(np.arange(nNt), nMt)
    S = sl.streamed_k
    real = S[jj] > 0
    fetch_w = (aa == 0) | (not w_resident)
    w_load = np.where(fetch_w, sl.w_bytes[jj], 0).astype(np.float64)
    used_total = sl.used_k_total
    if R * used_total * ob <= acc.usable_bytes(acc.input_buffer):  # X[a] resident across j
        x_load = np.where(jj == 0, r_len[aa] * used_total * ob, 0).astype(np.float64)
    else:
        x_load = (r_len[aa] * sl.used_k[jj] * ob).astype(np.float64)
    w_bytes = float(w_load.sum())
    idx_bytes = float(np.where(fetch_w, sl.index_bytes[jj], 0).sum())
    out_bytes = M * N * ob
    counts = ActionCounts(
        executed_macs=int(M * sl.exec_per_row.sum()), useful_macs=M * gb.kept_weights,
        dense_macs=M * K * N, weight_dram_bytes=w_bytes - idx_bytes, index_dram_bytes=idx_bytes,
        input_dram_bytes=float(x_load.sum()), output_dram_bytes=float(out_bytes),
        mandatory_dram_bytes=float(w_total + M * used_total * ob + out_bytes),
        weight_buffer_read_bytes=float(nMt * (sl.w_bytes.sum())),
        weight_buffer_write_bytes=w_bytes,
        input_buffer_read_bytes=float(M * sl.in_read_k.sum() * ob),
        input_buffer_write_bytes=float(x_load.sum()),
        output_buffer_read_bytes=float(out_bytes), output_buffer_write_bytes=float(out_bytes),
        folds=int(real.sum()), tiles_total=sl.tiles_total * nMt,
        tiles_skipped=sl.tiles_skipped * nMt)
    stream = np.where(real, S[jj], 0).astype(np.int64)
    return Schedule(
        kind="gemm", count=op.count, stream=stream,
        fill=pipeline_fill(stream, real, R, C, "os", acc.weight_preload),
        index=np.where(real & fetch_w, sl.index_cycles[jj], 0).astype(np.int64),
        weight_load=w_load,
        input_load=x_load, store_bytes=(r_len[aa] * n_len[jj] * ob).astype(np.float64),
        counts=counts, strategy=strategy, dataflow="os", load_imbalance=sl.load_imbalance,
        weight_slots=not w_resident, input_slots=True, row_ends=jj == nNt - 1)


# --------------------------------------------------------------------------- vector unit
def vector_schedule(op: VectorOp, acc: Accelerator) -> Schedule:
    """Chunks of the op: per chunk load the inputs, make `passes` passes at `lanes`
    elements/cycle, store the result; chunks are at most VECTOR_CHUNK_ELEMENTS (and fit the usable
    input buffer) so that loads, passes and stores pipeline. Rows (softmax, LayerNorm: <= a few
    thousand elements) are assumed to fit one chunk."""
    ob = acc.operand_bytes
    lanes = acc.vector_unit.lanes
    cap = acc.usable_bytes(acc.input_buffer)
    chunk = max(lanes, min(VECTOR_CHUNK_ELEMENTS, cap // (op.inputs * ob)))
    lens = _edge_sizes(op.elements, chunk)
    stream = -(-(lens * op.passes) // lanes)
    zeros = np.zeros(lens.size, np.int64)
    load = (lens * op.inputs * ob).astype(np.float64)
    store = (lens * ob).astype(np.float64)
    e = op.elements
    counts = ActionCounts(
        vector_element_passes=e * op.passes, weight_dram_bytes=0.0, index_dram_bytes=0.0,
        input_dram_bytes=float(load.sum()), output_dram_bytes=float(store.sum()),
        mandatory_dram_bytes=float(load.sum() + store.sum()),
        weight_buffer_read_bytes=0.0, weight_buffer_write_bytes=0.0,
        input_buffer_read_bytes=float(e * op.inputs * ob * op.passes),
        input_buffer_write_bytes=float(load.sum()),
        output_buffer_read_bytes=float(e * ob), output_buffer_write_bytes=float(e * ob),
        folds=int(lens.size))
    return Schedule(kind="vector", count=1, stream=stream.astype(np.int64), fill=zeros,
                    index=zeros, weight_load=np.zeros(lens.size), input_load=load,
                    store_bytes=store, counts=counts, strategy="dense", dataflow="vector")
