"""One pass over W of a GEMM on the PE array: the fold structures the schedules repeat.

What is modelled (the counting itself is described in hwmodels.mapping): per mask, array shape,
strategy, index format and element bytes, the ws folds of one M chunk (`WsFolds`) and the os
column slabs of one row tile (`OsSlabs`), built from tile occupancy, compaction's packing and the
index layout. They do not depend on clock, bandwidth or buffer sizes, so `pass_structure` keeps
them in the bounded cache `hwmodels.sweepcache.FOLDS`. Ignored: M chunking, residency and
timing (hwmodels.mapping, hwmodels.engines).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .accelerator import Accelerator
from .sweepcache import FOLDS
from .sparsity import (INDEX_DECODE_BITS_PER_CYCLE, ColumnPacking, GemmBlocks, IndexFormat,
                       IndexLayout, _edge_sizes, column_tile_packing, index_layout,
                       tile_occupancy)

INDEX_PORT_BYTES = INDEX_DECODE_BITS_PER_CYCLE // 8  # one 64-bit BRAM word per cycle


#: `IndexFormat.parse` of an accelerator's `index_format` text, memoised
_index_format = functools.lru_cache(maxsize=64)(IndexFormat.parse)


def _occupancy(gb: GemmBlocks, strategy: str, rows: int, cols: int) -> np.ndarray:
    """Kept weight tiles [ceil(K/rows), ceil(N/cols)]: all of them unless tiles are skipped."""
    if strategy == "tile-skip":
        return tile_occupancy(gb, rows, cols)
    return np.ones((math.ceil(gb.k / rows), math.ceil(gb.n / cols)), bool)


def _packing_imbalance(pk: ColumnPacking) -> float:
    """sum over column tiles of the longest packed K / sum of the mean packed K (1 if empty)."""
    busy = pk.packed_k > 0
    return float(pk.packed_k.sum() / pk.mean_k[busy].sum()) if busy.any() else 1.0


def _packing_and_layout(gb: GemmBlocks, cols: int, fmt: IndexFormat,
                        ib: int) -> tuple[ColumnPacking, IndexLayout]:
    """Compaction's packing and index layout per column tile; they depend on the mask and the
    array's column count only (cached in `hwmodels.sweepcache.FOLDS` across row counts)."""
    return FOLDS.get(("packing", gb.content_key, cols, str(fmt), ib),
                     lambda: (column_tile_packing(gb, cols), index_layout(gb, cols, fmt, ib)))


def pass_structure(gb: GemmBlocks, strategy: str, acc: Accelerator, dataflow: str,
                    wb: int | float):
    """One pass over W (ws `WsFolds`, os `OsSlabs`), from the bounded cache
    `hwmodels.sweepcache.FOLDS`: it depends on the mask, the array shape, the strategy, the
    index format, the bytes of one W element (`wb`: a weight's or, for the attention GEMMs, an
    activation's) and the index bytes only (not on clock, bandwidth or buffers)."""
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ib = acc.index_bytes
    if strategy == "compact":
        fmt = _index_format(acc.index_format)
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
class WsFolds:
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
    tile_last: np.ndarray  # [nNt] entry of each column tile's last fold (carries its store)
    n_real: int  # folds (entries that use the array)
    psum_cols: int  # sum over folds of their column tile's width (partial-sum columns)
    first_cols: int  # width of the column tiles with at least one fold


def _tile_entries(folds_j: np.ndarray, cols: int, n: int) -> dict:
    """The j-major entry layout of `WsFolds` from the folds per column tile: each tile gets
    max(folds, 1) entries (a store-only one when it has none)."""
    entries_j = np.maximum(folds_j, 1)
    ends = entries_j.cumsum()
    n_len = _edge_sizes(n, cols)
    return dict(jj=np.arange(entries_j.size).repeat(entries_j), tile_last=ends - 1,
                n_real=int(folds_j.sum()), psum_cols=int(folds_j @ n_len),
                first_cols=int(n_len[folds_j > 0].sum()))


def _per_entry(full: np.ndarray, last: np.ndarray, entries_j: np.ndarray,
               tile_last: np.ndarray) -> np.ndarray:
    """A per-entry array from per-column-tile values: `full` on a tile's entries but its last,
    `last` on its last entry (the j-major layout of `_tile_entries`)."""
    out = full.repeat(entries_j)
    out[tile_last] = last
    return out


def _ws_fold_index_cycles(lay: IndexLayout, fmt: IndexFormat, packed_k: np.ndarray,
                          rem: np.ndarray, bk: int, ib: int,
                          rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Index-decoder cycles of each ws fold beyond its R-cycle weight preload, per column tile
    for its full folds (K = rows) and for its last fold (K = `rem`, the remainder).

    block: the fold's new block columns (see `IndexLayout`) each get one index per block
    position of the fold, in lock step (shorter groups padded), as before formats existed;
    bitmap / nm: the tile's bit stream, split over its folds in proportion to their K."""
    if fmt.kind == "block":
        def cycles(seg):
            return -(-(lay.new_groups * -(-seg // bk) * ib) // INDEX_PORT_BYTES)
    else:
        den = np.maximum(packed_k, 1)

        def cycles(seg):
            return np.ceil(seg / den * lay.bits / INDEX_DECODE_BITS_PER_CYCLE).astype(np.int64)
    full = np.maximum(0, cycles(np.full(packed_k.size, rows, np.int64)) - rows)
    return full, np.maximum(0, cycles(rem) - rows)


def _ws_compact_folds(gb: GemmBlocks, rows: int, cols: int, wb: int | float, ib: int,
                      fmt: IndexFormat) -> WsFolds:
    """Per column tile j, ceil(packed K_j / R) folds of K = R but the last (the remainder),
    or one store-only entry when K_j = 0; every per-fold figure is computed per tile (a full
    fold's and the last fold's) and laid out over the entries (`_per_entry`)."""
    pk, lay = _packing_and_layout(gb, cols, fmt, ib)
    packed = pk.packed_k
    folds_j = -(-packed // rows)  # ceil
    # one entry per fold, plus a store-only pseudo-fold for an empty column tile
    lay_e = _tile_entries(folds_j, cols, gb.n)
    entries_j, last = np.maximum(folds_j, 1), lay_e["tile_last"]
    rem = packed - np.maximum(folds_j - 1, 0) * rows  # the last fold's remainder (or 0)
    seg = _per_entry(np.full(packed.size, rows, np.int64), rem, entries_j, last)
    den = np.maximum(packed, 1)
    frac_full, frac_last = rows / den, rem / den  # a fold's share of its tile (0: store-only)
    w_tile_bytes = pk.kept_elems * wb + lay.bytes  # per column tile
    index = _per_entry(*_ws_fold_index_cycles(lay, fmt, packed, rem, gb.bk, ib, rows),
                       entries_j, last)
    frac = _per_entry(frac_full, frac_last, entries_j, last)
    x_resident = np.zeros(seg.size)
    busy = (packed > 0).nonzero()[0]
    if busy.size:  # the first column tile with a fold loads X
        stop = int(last[busy[0]]) + 1
        start = stop - int(folds_j[busy[0]])
        x_resident[start:stop] = frac[start:stop]
    return WsFolds(
        compact=True, real=seg > 0, seg=seg,
        w_load=_per_entry(frac_full * w_tile_bytes, frac_last * w_tile_bytes, entries_j, last),
        index=index, used_k_total=pk.used_k_total, x_resident=x_resident,
        x_stream_k=_per_entry(frac_full * pk.used_k, frac_last * pk.used_k, entries_j,
                              last),  # gathered K positions per fold
        exec_elems=int(pk.kept_elems.sum()), tiles_total=int(folds_j.sum()), tiles_skipped=0,
        in_read_k=int(pk.gathered_k.sum()),  # per streamed row, summed over groups
        w_read_bytes=int(w_tile_bytes.sum()), index_bytes=lay.total_bytes,
        load_imbalance=_packing_imbalance(pk), **lay_e)


def _ws_tile_folds(gb: GemmBlocks, strategy: str, rows: int, cols: int,
                   wb: int | float) -> WsFolds:
    k_len, n_len = _edge_sizes(gb.k, rows), _edge_sizes(gb.n, cols)
    nKt = k_len.size
    occ = _occupancy(gb, strategy, rows, cols)
    occT = occ.T  # j-major order
    occ64 = occ.astype(np.int64)
    folds_j = occ64.sum(axis=0)
    if folds_j.min() > 0:  # every column tile has a fold: the entries are the kept tiles
        jj, ii = np.nonzero(occT)
        real = np.ones(jj.size, bool)
        seg = k_len[ii]
    else:
        present = occT.copy()
        present[folds_j == 0, 0] = True
        flat = np.flatnonzero(present.ravel())
        jj, ii = flat // nKt, flat % nKt
        real = occT.ravel()[flat]
        seg = np.where(real, k_len[ii], 0)
    first_j = np.argmax(occ, axis=1)  # first column tile that needs k slice i
    x_first = real & (jj == first_j[ii])
    k_per_tile = k_len @ occ64  # [nNt] K streamed per row by each column tile
    exec_elems = int(k_per_tile @ n_len)
    lay_e = _tile_entries(folds_j, cols, gb.n)
    return WsFolds(
        compact=False, real=real, seg=seg,
        w_load=np.where(real, k_len[ii] * n_len[jj] * wb, 0).astype(np.float64),
        index=np.zeros(jj.size, np.int64), used_k_total=int(k_len[occ.any(axis=1)].sum()),
        x_resident=(x_first * seg).astype(np.float64), x_stream_k=seg.astype(np.float64),
        exec_elems=exec_elems, tiles_total=int(occ.size),
        tiles_skipped=int(occ.size - lay_e["n_real"]),
        in_read_k=int(k_per_tile.sum()),  # K streamed per row, summed over tiles
        w_read_bytes=exec_elems * wb, index_bytes=0, load_imbalance=1.0, **lay_e)


# --------------------------------------------------------------------------- output stationary
@dataclass(frozen=True, eq=False)
class OsSlabs:
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
                      fmt: IndexFormat) -> OsSlabs:
    """The decoder reads a slab's new index bits (see `IndexLayout`) while the slab streams;
    only the excess over the stream is charged."""
    pk, lay = _packing_and_layout(gb, cols, fmt, ib)
    decode = -(-lay.bits // INDEX_DECODE_BITS_PER_CYCLE)
    return OsSlabs(
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
                   wb: int | float) -> OsSlabs:
    step = _os_skip_step(gb, strategy, rows)
    k_len, n_len = _edge_sizes(gb.k, step), _edge_sizes(gb.n, cols)
    occ = _occupancy(gb, strategy, step, cols)
    streamed = (k_len[:, None] * occ).sum(axis=0)
    none = np.zeros(n_len.size, np.int64)
    return OsSlabs(
        streamed_k=streamed, w_bytes=streamed * n_len * wb, index_bytes=none, index_cycles=none,
        used_k=streamed, used_k_total=int(k_len[occ.any(axis=1)].sum()),
        exec_per_row=streamed * n_len, in_read_k=streamed, tiles_total=int(occ.size),
        tiles_skipped=int(occ.size - occ.sum()), load_imbalance=1.0)
