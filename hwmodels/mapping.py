"""Mapping of one op onto the accelerator: the fold schedule both engines execute.

A *fold* is one use of the R x C PE array. `gemm_schedule` lists the folds of a GEMM in execution
order with, per fold, the cycles of the array (streaming, fill/drain, index overhead) and the DRAM
bytes the DMA must bring in before it (weights, inputs, indices) and write out after it (outputs).
The engines only differ in how they overlap those transfers with compute.

Weight stationary (ws), following SCALE-Sim 3.0's counting exactly (checked against SCALE-Sim
runs, see the README): a fold holds an R(K) x C(N) weight tile; per fold R cycles of weight preload, M cycles of
streaming X rows, R-1 cycles of input skew (fill) and C-1 cycles of partial-sum drain, i.e.
``2R + C + M - 2``; folds = ceil(K/R) * ceil(N/C); edge folds pay the full fill/drain. We report
M per fold as *compute* and 2R + C - 2 as *fill/drain*. SCALE-Sim reports the index of the last
cycle, so its figure is ours minus 1 per GEMM.
Output stationary (os): a fold holds an R(M) x C(N) output tile and streams K; per fold
``K + R + C - 2`` (K compute, R + C - 2 fill/drain skew; SCALE-Sim does not charge a separate
output drain); folds = ceil(M/R) * ceil(N/C).

Loop order and memory (ws): m-chunk > column tile j > k tile i. The output buffer holds the
int32 partial sums of one column tile for `m_chunk` rows; when M x C partial sums exceed the usable
output buffer, M is split into chunks (each chunk re-streams the weights unless the whole W fits
the weight buffer). X is resident when M_chunk x K fits the usable input buffer (loaded once, in
the first column tile that needs each k slice), otherwise re-fetched for every column tile.
(os): row tile a > column tile j; X[a] rows are resident across j if R x K fits the input buffer,
W is resident across row tiles if the whole (kept) W fits the weight buffer, else it is re-fetched
per row tile. Outputs are written once at operand precision (no partial-sum spills: ws chunks M
instead; os accumulates in the PEs). Usable capacity is half the buffer with double buffering.

Block sparsity (mask in GEMM orientation, see sparsity.py):
* tile-skip: a fold's R x C weight tile (ws), or an R-long K chunk of a column slab (os), is
  skipped - neither fetched nor computed - only when every block intersecting it is zero. Kept
  tiles are fetched and computed densely (zeros inside them included).
* compact: kept blocks are packed along K per block column, each block column of a column tile
  gets its own PE column group and gathered input stream, and the longest packed column sets the
  tile's K length (ws: ceil(K_j / R) folds; os: K_j streamed). Load imbalance =
  sum_j max packed K / sum_j mean packed K (time lost to unequal groups, not averaged away).
  Index bytes (`index_bytes` per kept block) are fetched with the weights and occupy the weight
  buffer. The index decoder reads one 64-bit word per cycle, overlapped with the weight preload
  (ws) or the stream (os); only the excess is charged as index-overhead cycles.
* A mask with every block kept through tile-skip gives the dense schedule exactly; through
  compact it gives the dense fold structure plus index bytes (and index cycles, if any).

Ignored: bank conflicts inside buffers, DRAM page effects (in the sustained bandwidth), bias
loads, requantisation cost, the input-gather crossbar's own timing (assumed one word per cycle per
group).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .accelerator import Accelerator
from .sparsity import GemmBlocks, column_tile_packing, dense_gemm_blocks, tile_occupancy
from .workload import GemmOp, VectorOp

INDEX_PORT_BYTES = 8  # the index decoder reads one 64-bit BRAM word per cycle
VECTOR_CHUNK_ELEMENTS = 8192  # a vector op streams through the buffers in chunks of this size


@dataclass(frozen=True, eq=False)
class Schedule:
    """Per-fold arrays (one instance of the op; the engines repeat it `count` times) and totals."""

    kind: str  # "gemm" or "vector"
    count: int
    stream: np.ndarray  # cycles of useful streaming per fold (vector: vector-unit cycles)
    fill: np.ndarray  # fill/drain (+ weight preload) cycles per fold
    index: np.ndarray  # index-overhead cycles per fold
    weight_load: np.ndarray  # DRAM bytes of weights (+ indices) to bring in before the fold
    input_load: np.ndarray  # DRAM bytes of inputs to bring in before the fold
    store_bytes: np.ndarray  # DRAM bytes to write after the fold
    totals: dict = field(default_factory=dict)  # per-instance totals (bytes, MACs, accesses)
    #: False when the whole operand stays in its buffer (no ping-pong slot cycling): loads of it
    #: may run arbitrarily far ahead. True: each load occupies one of the two halves (one with
    #: double buffering off) until the last fold that uses it (the folds up to the next load).
    weight_slots: bool = True
    input_slots: bool = True

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


def _lens(total: int, tile: int) -> np.ndarray:
    n = math.ceil(total / tile)
    out = np.full(n, tile, dtype=np.int64)
    out[-1] = total - tile * (n - 1)
    return out


def ideal_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> int:
    """Dense GEMM cycles with ideal memory (compute + fill/drain) in our counting; SCALE-Sim's
    "Total Cycles" in its ideal (CALC) mode is this minus 1."""
    if dataflow == "ws":
        return math.ceil(k / rows) * math.ceil(n / cols) * (2 * rows + cols + m - 2)
    if dataflow == "os":
        return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2)
    raise ValueError(f"dataflow {dataflow!r}: expected 'ws' or 'os'")


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
    if acc.dataflow == "ws":
        return _ws(op, acc, gb, strategy)
    return _os(op, acc, gb, strategy)


# --------------------------------------------------------------------------- weight stationary
def _ws(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob, ab, ib = acc.operand_bytes, acc.accumulator_bytes, acc.index_bytes
    M, K, N = op.m, op.k, op.n
    w_cap = acc.usable_bytes(acc.weight_buffer)
    x_cap = acc.usable_bytes(acc.input_buffer)
    o_cap = acc.usable_bytes(acc.output_buffer)
    n_len = _lens(N, C)
    nNt = n_len.size
    m_chunk = max(1, min(M, o_cap // (C * ab)))
    m_lens = _lens(M, m_chunk)
    fill_per_fold = 2 * R + C - 2

    if strategy == "compact":
        pk = column_tile_packing(gb, C)
        folds_j = -(-pk.packed_k // R)  # ceil
        # one "present" entry per fold, plus a store-only pseudo-fold for an empty column tile
        entries_j = np.maximum(folds_j, 1)
        jj = np.repeat(np.arange(nNt), entries_j)
        pos = np.arange(jj.size) - np.repeat(np.cumsum(entries_j) - entries_j, entries_j)
        real = pos < folds_j[jj]
        seg = np.where(real, np.minimum(R, pk.packed_k[jj] - pos * R), 0)
        frac = np.where(real, seg / np.maximum(pk.packed_k[jj], 1), 0.0)
        w_tile_bytes = pk.kept_elems * ob + pk.kept_blocks * ib  # per column tile
        w_load1 = frac * w_tile_bytes[jj]
        n_idx = pk.groups[jj] * np.maximum(1, -(-seg // gb.bk))
        index = np.where(real, np.maximum(0, -(-(n_idx * ib) // INDEX_PORT_BYTES) - R), 0)
        used_total = pk.used_k_total
        first_j = int(np.argmax(pk.packed_k > 0)) if (pk.packed_k > 0).any() else -1
        x_res_frac = np.where(real & (jj == first_j), frac, 0.0)
        x_stream_k = frac * pk.used_k[jj]  # gathered K positions per fold when not resident
        exec_elems = int(pk.kept_elems.sum())
        imbalance = (float(pk.packed_k.sum() / pk.mean_k[pk.packed_k > 0].sum())
                     if (pk.packed_k > 0).any() else 1.0)
        tiles_total = int(folds_j.sum())
        tiles_skipped = 0
        in_read_k = int(pk.gathered_k.sum())  # per streamed row, summed over groups
        w_read_bytes = int(w_tile_bytes.sum())
    else:
        k_len = _lens(K, R)
        nKt = k_len.size
        occ = (tile_occupancy(gb, R, C) if strategy == "tile-skip"
               else np.ones((nKt, nNt), bool))
        occT = occ.T  # j-major order
        empty_col = ~occT.any(axis=1)
        present = occT.copy()
        present[empty_col, 0] = True
        flat = np.flatnonzero(present.ravel())
        jj, ii = flat // nKt, flat % nKt
        real = occT.ravel()[flat]
        seg = np.where(real, k_len[ii], 0)
        w_load1 = np.where(real, k_len[ii] * n_len[jj] * ob, 0).astype(np.float64)
        index = np.zeros(jj.size, np.int64)
        used_rows = occ.any(axis=1)
        used_total = int(k_len[used_rows].sum())
        first_j = np.argmax(occ, axis=1)  # first column tile that needs k slice i
        x_res_frac = None
        x_first = real & (jj == first_j[ii])
        x_stream_k = seg.astype(np.float64)
        exec_elems = int((k_len[:, None] * n_len[None, :] * occ).sum())
        imbalance = 1.0
        tiles_total = int(nKt * nNt)
        tiles_skipped = int(tiles_total - occ.sum())
        in_read_k = int((k_len[:, None] * occ).sum())  # K streamed per row, summed over tiles
        w_read_bytes = exec_elems * ob

    # last present entry of each column tile carries that tile's output store
    last = np.ones(jj.size, bool)
    last[:-1] = jj[1:] != jj[:-1]
    w_total_once = float(w_load1.sum())
    w_resident = len(m_lens) > 1 and w_total_once <= w_cap

    nch = len(m_lens)
    real_i = real.astype(np.int64)
    store_unit = (last * n_len[jj] * ob).astype(np.float64)  # bytes per streamed row
    if strategy != "compact":
        x_first_unit = (x_first * seg * ob).astype(np.float64)
    wl_parts, xl_parts = [], []
    x_resident_any = False
    x_bytes = w_bytes = 0.0
    for c, ml in enumerate(m_lens):
        ml = int(ml)
        if ml * used_total * ob <= x_cap:
            x_resident_any = True
            x_load = (x_res_frac * (ml * used_total * ob) if strategy == "compact"
                      else x_first_unit * ml)
        else:
            x_load = x_stream_k * (ml * ob)
        w_load = w_load1 if (c == 0 or not w_resident) else np.zeros_like(w_load1)
        wl_parts.append(w_load)
        xl_parts.append(x_load)
        x_bytes += float(x_load.sum())
        w_bytes += float(w_load.sum())
    if nch == 1:
        stream = real_i * int(m_lens[0])
        fill = real_i * fill_per_fold
        index_all = index.astype(np.int64)
        store_all = store_unit * int(m_lens[0])
        w_all, x_all = wl_parts[0], xl_parts[0]
    else:
        stream = np.concatenate([real_i * int(ml) for ml in m_lens])
        fill = np.tile(real_i * fill_per_fold, nch)
        index_all = np.tile(index.astype(np.int64), nch)
        store_all = np.concatenate([store_unit * int(ml) for ml in m_lens])
        w_all, x_all = np.concatenate(wl_parts), np.concatenate(xl_parts)
    real_folds = int(np.count_nonzero(stream))
    out_bytes = M * N * ob
    idx_bytes = 0
    if strategy == "compact":
        idx_bytes_once = int((pk.kept_blocks * ib).sum())
        idx_bytes = idx_bytes_once * (len(m_lens) if not w_resident else 1)
    w_once = w_total_once
    mandatory = w_once + M * used_total * ob + out_bytes
    psum_cols = int(np.where(real, n_len[jj], 0).sum())
    first_cols = int(n_len[np.bincount(jj[real], minlength=nNt) > 0].sum())
    totals = dict(
        strategy=strategy, dataflow="ws",
        weight_bytes=w_bytes - idx_bytes, index_bytes=idx_bytes, input_bytes=x_bytes,
        output_bytes=float(out_bytes), mandatory_bytes=float(mandatory),
        executed_macs=M * exec_elems, useful_macs=M * gb.kept_weights,
        dense_macs=M * K * N, folds=real_folds, tiles_total=tiles_total * len(m_lens),
        tiles_skipped=tiles_skipped * len(m_lens), load_imbalance=imbalance,
        # on-chip accesses in bytes
        weight_write=w_bytes, weight_read=float(w_read_bytes * len(m_lens)),
        input_write=x_bytes, input_read=float(M * in_read_k * ob),
        # partial sums: read-modify-write per fold (first fold of a tile writes only) + final read
        output_write=float(M * ab * psum_cols),
        output_read=float(M * ab * (psum_cols - first_cols) + out_bytes),
    )
    return Schedule("gemm", op.count, stream, fill, index_all, w_all, x_all, store_all, totals,
                    weight_slots=not w_resident,
                    input_slots=not (x_resident_any and len(m_lens) == 1))


# --------------------------------------------------------------------------- output stationary
def _os(op: GemmOp, acc: Accelerator, gb: GemmBlocks, strategy: str) -> Schedule:
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ob, ib = acc.operand_bytes, acc.index_bytes
    M, K, N = op.m, op.k, op.n
    w_cap = acc.usable_bytes(acc.weight_buffer)
    x_cap = acc.usable_bytes(acc.input_buffer)
    r_len = _lens(M, R)
    n_len = _lens(N, C)
    nMt, nNt = r_len.size, n_len.size
    fill_per_fold = R + C - 2
    if strategy == "compact":
        pk = column_tile_packing(gb, C)
        S = pk.packed_k  # streamed K per column slab
        slab_w = pk.kept_elems * ob + pk.kept_blocks * ib
        used_k = pk.used_k
        used_total = pk.used_k_total
        idx_cyc = np.maximum(0, -(-(pk.kept_blocks * ib) // INDEX_PORT_BYTES) - S)
        exec_per_row = pk.kept_elems  # MACs per output row, per slab
        in_read_k = pk.gathered_k
        imbalance = (float(S.sum() / pk.mean_k[S > 0].sum()) if (S > 0).any() else 1.0)
        tiles_total, tiles_skipped = int(nNt), 0
        idx_bytes_slab = pk.kept_blocks * ib
    else:
        k_len = _lens(K, R)
        occ = (tile_occupancy(gb, R, C) if strategy == "tile-skip"
               else np.ones((k_len.size, nNt), bool))
        S = (k_len[:, None] * occ).sum(axis=0)
        slab_w = S * n_len * ob
        used_k = S
        used_total = int(k_len[occ.any(axis=1)].sum())
        idx_cyc = np.zeros(nNt, np.int64)
        exec_per_row = S * n_len
        in_read_k = S
        imbalance = 1.0
        tiles_total = int(occ.size)
        tiles_skipped = int(occ.size - occ.sum())
        idx_bytes_slab = np.zeros(nNt, np.int64)
    w_total = float(slab_w.sum())
    w_resident = nMt > 1 and w_total <= w_cap
    aa = np.repeat(np.arange(nMt), nNt)
    jj = np.tile(np.arange(nNt), nMt)
    real = S[jj] > 0
    stream = np.where(real, S[jj], 0).astype(np.int64)
    fill = np.where(real, fill_per_fold, 0).astype(np.int64)
    index = np.where(real, idx_cyc[jj], 0).astype(np.int64)
    w_load = np.where((aa == 0) | (not w_resident), slab_w[jj], 0).astype(np.float64)
    x_res = R * used_total * ob <= x_cap
    if x_res:
        x_load = np.where(jj == 0, r_len[aa] * used_total * ob, 0).astype(np.float64)
    else:
        x_load = (r_len[aa] * used_k[jj] * ob).astype(np.float64)
    store = (r_len[aa] * n_len[jj] * ob).astype(np.float64)
    w_bytes = float(w_load.sum())
    idx_bytes = float(np.where((aa == 0) | (not w_resident), idx_bytes_slab[jj], 0).sum())
    out_bytes = M * N * ob
    totals = dict(
        strategy=strategy, dataflow="os",
        weight_bytes=w_bytes - idx_bytes, index_bytes=idx_bytes, input_bytes=float(x_load.sum()),
        output_bytes=float(out_bytes), mandatory_bytes=float(w_total + M * used_total * ob
                                                            + out_bytes),
        executed_macs=int(M * exec_per_row.sum()), useful_macs=M * gb.kept_weights,
        dense_macs=M * K * N, folds=int(real.sum()), tiles_total=tiles_total * nMt,
        tiles_skipped=tiles_skipped * nMt, load_imbalance=imbalance,
        weight_write=w_bytes, weight_read=float(nMt * (slab_w.sum())),
        input_write=float(x_load.sum()), input_read=float(M * in_read_k.sum() * ob),
        output_write=float(out_bytes), output_read=float(out_bytes),
    )
    return Schedule("gemm", op.count, stream, fill, index, w_load, x_load, store, totals,
                    weight_slots=not w_resident, input_slots=True)


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
    lens = _lens(op.elements, chunk)
    stream = -(-(lens * op.passes) // lanes)
    zeros = np.zeros(lens.size, np.int64)
    load = (lens * op.inputs * ob).astype(np.float64)
    store = (lens * ob).astype(np.float64)
    e = op.elements
    totals = dict(
        strategy="dense", dataflow="vector", weight_bytes=0.0, index_bytes=0.0,
        input_bytes=float(load.sum()), output_bytes=float(store.sum()),
        mandatory_bytes=float(load.sum() + store.sum()), executed_macs=0, useful_macs=0,
        dense_macs=0, folds=int(lens.size), tiles_total=0, tiles_skipped=0, load_imbalance=1.0,
        weight_write=0.0, weight_read=0.0, input_write=float(load.sum()),
        input_read=float(e * op.inputs * ob * op.passes), output_write=float(e * ob),
        output_read=float(e * ob), vector_element_passes=e * op.passes,
    )
    return Schedule("vector", 1, stream.astype(np.int64), zeros, zeros, np.zeros(lens.size), load,
                    store, totals)
