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

Ignored: bank conflicts inside buffers, DRAM page effects (in the sustained bandwidth), bias
loads, requantisation cost, the input-gather crossbar's own timing (assumed one word per cycle per
group).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .accelerator import Accelerator
from .actions import ActionCounts
from .pipeline import pipeline_fill
from .sweepcache import FOLDS
from .sparsity import (INDEX_DECODE_BITS_PER_CYCLE, ColumnPacking, GemmBlocks, IndexFormat,
                       IndexLayout, column_tile_packing, dense_gemm_blocks, edge_sizes,
                       index_layout, tile_occupancy)
from .workload import GemmOp, VectorOp

INDEX_PORT_BYTES = INDEX_DECODE_BITS_PER_CYCLE // 8  # one 64-bit BRAM word per cycle
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


def _strategy(acc: Accelerator, gb: GemmBlocks | None) -> str:
    return "dense" if gb is None or acc.sparse_strategy == "dense" else acc.sparse_strategy


def gemm_schedule(op: GemmOp, acc: Accelerator, gb: GemmBlocks | None = None) -> Schedule:
    """The fold schedule of one instance of `op` (a mask `gb` in GEMM orientation, or None)."""
    if gb is not None and (gb.k, gb.n) != (op.k, op.n):
        raise ValueError(f"op {op.name}: mask covers W[{gb.k},{gb.n}] but the op has "
                         f"W[{op.k},{op.n}] (K = in_features, N = out_features)")
    strategy = _strategy(acc, gb)
    if strategy == "dense":
        gb = dense_gemm_blocks(op.k, op.n)
    if acc.dataflow_of(op) == "ws":  # a dataflow per op type: hwmodels.dataflow
        return _ws(op, acc, gb, strategy)
    return _os(op, acc, gb, strategy)


def _occupancy(gb: GemmBlocks, strategy: str, rows: int, cols: int) -> np.ndarray:
    """Kept weight tiles [ceil(K/rows), ceil(N/cols)]: all of them unless tiles are skipped."""
    if strategy == "tile-skip":
        return tile_occupancy(gb, rows, cols)
    return np.ones((math.ceil(gb.k / rows), math.ceil(gb.n / cols)), bool)


def _packing_imbalance(pk: ColumnPacking) -> float:
    """sum over column tiles of the longest packed K / sum of the mean packed K (1 if empty)."""
    busy = pk.packed_k > 0
    return float(pk.packed_k.sum() / pk.mean_k[busy].sum()) if busy.any() else 1.0


def _decode_once(index: np.ndarray, passes: int, resident: bool) -> np.ndarray:
    """Index cycles of one pass over W repeated `passes` times (ws M chunks): indices that stay
    on chip with the weights (`resident`) are decoded in the first pass only; the decoded gather
    addresses (one per index entry, no larger than a block index) are kept for the others."""
    if passes == 1 or not resident:
        return np.tile(index, passes)
    return np.concatenate([index, np.zeros(index.size * (passes - 1), np.int64)])


def _packing_and_layout(gb: GemmBlocks, cols: int, fmt: IndexFormat,
                        ib: int) -> tuple[ColumnPacking, IndexLayout]:
    """Compaction's packing and index layout per column tile; they depend on the mask and the
    array's column count only (cached in `hwmodels.sweepcache.FOLDS` across row counts)."""
    return FOLDS.get(("packing", gb.content_key, cols, str(fmt), ib),
                     lambda: (column_tile_packing(gb, cols), index_layout(gb, cols, fmt, ib)))


def _pass_structure(gb: GemmBlocks, strategy: str, acc: Accelerator, dataflow: str,
                    wb: int | float):
    """One pass over W (ws `_WsFolds`, os `_OsSlabs`), from the bounded cache
    `hwmodels.sweepcache.FOLDS`: it depends on the mask, the array shape, the strategy, the
    index format, the bytes of one W element (`wb`: a weight's or, for the attention GEMMs, an
    activation's) and the index bytes only (not on clock, bandwidth or buffers)."""
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ib = acc.index_bytes
    if strategy == "compact":
        fmt = IndexFormat.parse(acc.index_format)
        key = (dataflow, strategy, gb.content_key, R, C, wb, ib, str(fmt))
        if dataflow == "ws":
            return FOLDS.get(key, lambda: _ws_compact_folds(gb, R, C, wb, ib, fmt))
        return FOLDS.get(key, lambda: _os_compact_slabs(gb, C, wb, ib, fmt))
    key = (dataflow, strategy, gb.content_key, R, C, wb)
    if dataflow == "ws":
        return FOLDS.get(key, lambda: _ws_tile_folds(gb, strategy, R, C, wb))
    return FOLDS.get(key, lambda: _os_tile_slabs(gb, strategy, R, C, wb))


# --------------------------------------------------------------------------- weight stationary
@dataclass(frozen=True, eq=False)
class _WsFolds:
    """One pass over W (one M chunk) in execution order, column tile j major: an entry per fold,
    plus a store-only entry for a column tile whose weight tiles are all skipped."""

    compact: bool
    jj: np.ndarray  # column tile of each entry
    real: np.ndarray  # the entry is a fold (False: store-only)
    seg: np.ndarray  # K rows of the fold's weight tile
    w_load: np.ndarray  # DRAM bytes of weights (+ indices) before the fold
    index: np.ndarray  # index-overhead cycles of the fold
    used_k_total: int  # K positions used by any kept block (rows of X needed)
    #: resident X: compact, the share of it the fold loads; otherwise X bytes per streamed row
    #: the fold loads first (its k slice in the first column tile that needs it), in elements
    x_resident: np.ndarray
    x_stream_k: np.ndarray  # K positions the fold streams when X is not resident
    exec_elems: int  # weights multiplied per streamed row (zeros inside kept tiles included)
    tiles_total: int
    tiles_skipped: int
    in_read_k: int  # input-buffer reads per streamed row, summed over folds
    w_read_bytes: int  # weight-buffer bytes read
    index_bytes: int  # block-index bytes of W
    load_imbalance: float


def _ws_fold_index_cycles(lay: IndexLayout, fmt: IndexFormat, jj: np.ndarray, seg: np.ndarray,
                          frac: np.ndarray, bk: int, ib: int, rows: int) -> np.ndarray:
    """Index-decoder cycles of each ws fold beyond its R-cycle weight preload.

    block: the fold's new block columns (see `IndexLayout`) each get one index per block
    position of the fold, in lock step (shorter groups padded), as before formats existed;
    bitmap / nm: the tile's bit stream, split over its folds in proportion to their K."""
    if fmt.kind == "block":
        n_idx = lay.new_groups[jj] * np.maximum(1, -(-seg // bk))
        cycles = -(-(n_idx * ib) // INDEX_PORT_BYTES)
    else:
        cycles = np.ceil(frac * lay.bits[jj] / INDEX_DECODE_BITS_PER_CYCLE).astype(np.int64)
    return np.where(seg > 0, np.maximum(0, cycles - rows), 0)


def _ws_compact_folds(gb: GemmBlocks, rows: int, cols: int, wb: int | float, ib: int,
                      fmt: IndexFormat) -> _WsFolds:
    pk, lay = _packing_and_layout(gb, cols, fmt, ib)
    folds_j = -(-pk.packed_k // rows)  # ceil
    # one entry per fold, plus a store-only pseudo-fold for an empty column tile
    entries_j = np.maximum(folds_j, 1)
    jj = np.repeat(np.arange(entries_j.size), entries_j)
    pos = np.arange(jj.size) - np.repeat(np.cumsum(entries_j) - entries_j, entries_j)
    real = pos < folds_j[jj]
    seg = np.where(real, np.minimum(rows, pk.packed_k[jj] - pos * rows), 0)
    frac = np.where(real, seg / np.maximum(pk.packed_k[jj], 1), 0.0)
    w_tile_bytes = pk.kept_elems * wb + lay.bytes  # per column tile
    index = _ws_fold_index_cycles(lay, fmt, jj, seg, frac, gb.bk, ib, rows)
    first_j = int(np.argmax(pk.packed_k > 0)) if (pk.packed_k > 0).any() else -1
    return _WsFolds(
        compact=True, jj=jj, real=real, seg=seg, w_load=frac * w_tile_bytes[jj], index=index,
        used_k_total=pk.used_k_total, x_resident=np.where(real & (jj == first_j), frac, 0.0),
        x_stream_k=frac * pk.used_k[jj],  # gathered K positions per fold
        exec_elems=int(pk.kept_elems.sum()), tiles_total=int(folds_j.sum()), tiles_skipped=0,
        in_read_k=int(pk.gathered_k.sum()),  # per streamed row, summed over groups
        w_read_bytes=int(w_tile_bytes.sum()), index_bytes=lay.total_bytes,
        load_imbalance=_packing_imbalance(pk))


def _ws_tile_folds(gb: GemmBlocks, strategy: str, rows: int, cols: int,
                   wb: int | float) -> _WsFolds:
    k_len, n_len = edge_sizes(gb.k, rows), edge_sizes(gb.n, cols)
    nKt = k_len.size
    occ = _occupancy(gb, strategy, rows, cols)
    occT = occ.T  # j-major order
    present = occT.copy()
    present[~occT.any(axis=1), 0] = True
    flat = np.flatnonzero(present.ravel())
    jj, ii = flat // nKt, flat % nKt
    real = occT.ravel()[flat]
    seg = np.where(real, k_len[ii], 0)
    first_j = np.argmax(occ, axis=1)  # first column tile that needs k slice i
    x_first = real & (jj == first_j[ii])
    exec_elems = int((k_len[:, None] * n_len[None, :] * occ).sum())
    return _WsFolds(
        compact=False, jj=jj, real=real, seg=seg,
        w_load=np.where(real, k_len[ii] * n_len[jj] * wb, 0).astype(np.float64),
        index=np.zeros(jj.size, np.int64), used_k_total=int(k_len[occ.any(axis=1)].sum()),
        x_resident=(x_first * seg).astype(np.float64), x_stream_k=seg.astype(np.float64),
        exec_elems=exec_elems, tiles_total=int(occ.size), tiles_skipped=int(occ.size - occ.sum()),
        in_read_k=int((k_len[:, None] * occ).sum()),  # K streamed per row, summed over tiles
        w_read_bytes=exec_elems * wb, index_bytes=0, load_imbalance=1.0)


def _ws_input_load(f: _WsFolds, rows: int, x_cap: int, ob: int) -> tuple[np.ndarray, bool]:
    """DRAM bytes of X before each fold for an M chunk of `rows` rows; True if X is resident."""
    if rows * f.used_k_total * ob <= x_cap:
        if f.compact:
            return f.x_resident * (rows * f.used_k_total * ob), True
        return f.x_resident * rows * ob, True
    return f.x_stream_k * (rows * ob), False


def _ws(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob, ab, ib = acc.operand_bytes, acc.accumulator_bytes, acc.index_bytes
    M, K, N = op.m, op.k, op.n
    x_cap = acc.usable_bytes(acc.input_buffer)
    n_len = edge_sizes(N, C)
    m_lens = [int(ml) for ml in edge_sizes(M, max(1, min(M, acc.usable_bytes(
        acc.output_buffer) // (C * ab))))]
    nch = len(m_lens)
    f = _pass_structure(gb, strategy, acc, "ws", acc.w_operand_bytes(op.kind))
    # the last entry of each column tile carries that tile's output store
    last = np.ones(f.jj.size, bool)
    last[:-1] = f.jj[1:] != f.jj[:-1]
    w_once = float(f.w_load.sum())
    w_resident = nch > 1 and w_once <= acc.usable_bytes(acc.weight_buffer)
    real_i = f.real.astype(np.int64)
    store_unit = (last * n_len[f.jj] * ob).astype(np.float64)  # bytes per streamed row
    w_parts, x_parts = [], []
    x_resident_any = False
    for c, ml in enumerate(m_lens):
        x_load, resident = _ws_input_load(f, ml, x_cap, ob)
        x_resident_any = x_resident_any or resident
        w_parts.append(f.w_load if (c == 0 or not w_resident) else np.zeros_like(f.w_load))
        x_parts.append(x_load)
    w_bytes = sum((float(w.sum()) for w in w_parts), 0.0)
    x_bytes = sum((float(x.sum()) for x in x_parts), 0.0)
    stream = np.concatenate([real_i * ml for ml in m_lens])
    idx_bytes = f.index_bytes * (nch if not w_resident else 1)
    out_bytes = M * N * ob
    psum_cols = int(np.where(f.real, n_len[f.jj], 0).sum())
    first_cols = int(n_len[np.bincount(f.jj[f.real], minlength=n_len.size) > 0].sum())
    counts = ActionCounts(
        executed_macs=M * f.exec_elems, useful_macs=M * gb.kept_weights, dense_macs=M * K * N,
        weight_dram_bytes=w_bytes - idx_bytes, index_dram_bytes=idx_bytes,
        input_dram_bytes=x_bytes, output_dram_bytes=float(out_bytes),
        mandatory_dram_bytes=float(w_once + M * f.used_k_total * ob + out_bytes),
        weight_buffer_read_bytes=float(f.w_read_bytes * nch), weight_buffer_write_bytes=w_bytes,
        input_buffer_read_bytes=float(M * f.in_read_k * ob), input_buffer_write_bytes=x_bytes,
        # partial sums: read-modify-write per fold (the first fold of a tile writes only) and
        # the final read-out
        output_buffer_read_bytes=float(M * ab * (psum_cols - first_cols) + out_bytes),
        output_buffer_write_bytes=float(M * ab * psum_cols),
        folds=int(np.count_nonzero(stream)), tiles_total=f.tiles_total * nch,
        tiles_skipped=f.tiles_skipped * nch)
    real_all = np.tile(f.real, nch)
    row_ends = np.zeros(real_all.size, bool)
    row_ends[np.arange(1, nch + 1) * f.jj.size - 1] = True  # the end of each M chunk
    return Schedule(
        kind="gemm", count=op.count, stream=stream,
        fill=pipeline_fill(stream, real_all, R, C, "ws", acc.weight_preload),
        index=_decode_once(f.index.astype(np.int64), nch, w_resident),
        weight_load=np.concatenate(w_parts),
        input_load=np.concatenate(x_parts),
        store_bytes=np.concatenate([store_unit * ml for ml in m_lens]), counts=counts,
        strategy=strategy, dataflow="ws", load_imbalance=f.load_imbalance,
        weight_slots=not w_resident, input_slots=not (x_resident_any and nch == 1),
        row_ends=row_ends)


# --------------------------------------------------------------------------- output stationary
@dataclass(frozen=True, eq=False)
class _OsSlabs:
    """Per column slab (the C output columns of a column tile): what each row tile streams."""

    streamed_k: np.ndarray  # K positions streamed (compaction: the longest packed group)
    w_bytes: np.ndarray  # DRAM bytes of the slab's weights (+ indices)
    index_bytes: np.ndarray  # of which block indices
    index_cycles: np.ndarray  # index-decoder cycles beyond the stream
    used_k: np.ndarray  # K positions of X the slab needs
    used_k_total: int  # K positions of X any slab needs
    exec_per_row: np.ndarray  # MACs per output row
    in_read_k: np.ndarray  # input-buffer reads per output row
    tiles_total: int
    tiles_skipped: int
    load_imbalance: float


def _os_compact_slabs(gb: GemmBlocks, cols: int, wb: int | float, ib: int,
                      fmt: IndexFormat) -> _OsSlabs:
    """The decoder reads a slab's new index bits (see `IndexLayout`) while the slab streams;
    only the excess over the stream is charged."""
    pk, lay = _packing_and_layout(gb, cols, fmt, ib)
    decode = -(-lay.bits // INDEX_DECODE_BITS_PER_CYCLE)
    return _OsSlabs(
        streamed_k=pk.packed_k, w_bytes=pk.kept_elems * wb + lay.bytes, index_bytes=lay.bytes,
        index_cycles=np.maximum(0, decode - pk.packed_k),
        used_k=pk.used_k, used_k_total=pk.used_k_total, exec_per_row=pk.kept_elems,
        in_read_k=pk.gathered_k, tiles_total=int(pk.packed_k.size), tiles_skipped=0,
        load_imbalance=_packing_imbalance(pk))


def _os_skip_step(gb: GemmBlocks, strategy: str, rows: int) -> int:
    """K positions per skip unit of an os column slab.

    In os a PE row holds one output row (M) and a PE column one output column (N); K is time:
    at step t every column consumes W[k_t, n_j] and every row X[m_i, k_t]. A step can be skipped
    for the whole slab exactly when W[k_t, n] = 0 for every n of the slab, so the array height R
    plays no part; a block mask's zeros along K come in runs of its block height bk, which makes
    one block row (bk steps) of a slab the skip unit. Without skipping: chunks of R (the count of
    the dense schedule, unchanged)."""
    return gb.bk if strategy == "tile-skip" else rows


def _os_tile_slabs(gb: GemmBlocks, strategy: str, rows: int, cols: int,
                   wb: int | float) -> _OsSlabs:
    step = _os_skip_step(gb, strategy, rows)
    k_len, n_len = edge_sizes(gb.k, step), edge_sizes(gb.n, cols)
    occ = _occupancy(gb, strategy, step, cols)
    streamed = (k_len[:, None] * occ).sum(axis=0)
    none = np.zeros(n_len.size, np.int64)
    return _OsSlabs(
        streamed_k=streamed, w_bytes=streamed * n_len * wb, index_bytes=none, index_cycles=none,
        used_k=streamed, used_k_total=int(k_len[occ.any(axis=1)].sum()),
        exec_per_row=streamed * n_len, in_read_k=streamed, tiles_total=int(occ.size),
        tiles_skipped=int(occ.size - occ.sum()), load_imbalance=1.0)


def _os(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob = acc.operand_bytes
    M, K, N = op.m, op.k, op.n
    r_len, n_len = edge_sizes(M, R), edge_sizes(N, C)
    nMt, nNt = r_len.size, n_len.size
    sl = _pass_structure(gb, strategy, acc, "os", acc.w_operand_bytes(op.kind))
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
    lens = edge_sizes(op.elements, chunk)
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
