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
from typing import Sequence

import numpy as np

from .accelerator import Accelerator
from .frozen import derived, make
from .sweepcache import FOLDS
from .occupancy import GridStack
from .sparsity import (INDEX_DECODE_BITS_PER_CYCLE, ColumnPacking, GemmBlocks, IndexFormat,
                       IndexLayout, _edge_sizes, _read_only, column_tile_packing, index_layout,
                       tile_occupancy)

INDEX_PORT_BYTES = INDEX_DECODE_BITS_PER_CYCLE // 8  # one 64-bit BRAM word per cycle


#: `IndexFormat.parse` of an accelerator's `index_format` text, memoised
_index_format = functools.lru_cache(maxsize=64)(IndexFormat.parse)


def _occupancy(st: GridStack, strategy: str, rows: int, cols: int) -> np.ndarray:
    """Kept weight tiles [S, ceil(K/rows), ceil(N/cols)] of every mask of the stack: all of
    them unless tiles are skipped."""
    if strategy == "tile-skip":
        return tile_occupancy(st, rows, cols)
    return np.ones((len(st.members), math.ceil(st.k / rows), math.ceil(st.n / cols)), bool)


def _packing_imbalance(pk: ColumnPacking) -> list[float]:
    """Per mask of the stack: sum over column tiles of the longest packed K / sum of the mean
    packed K (1 if empty). A float sum depends on its order unless exact: with 1, 2, 4, ...
    groups per tile every mean is an exact binary fraction, so the masked row sums are exact;
    otherwise each row is summed alone, as one mask's 1-D array."""
    busy = pk.packed_k > 0
    num = pk.packed_k.sum(axis=-1)
    any_busy = busy.any(axis=-1).tolist()
    g = pk.groups
    if bool((g & (g - 1) == 0).all()):
        den = np.where(busy, pk.mean_k, 0.0).sum(axis=-1)
        return [float(a / b) if on else 1.0 for a, b, on in zip(num, den, any_busy)]
    return [float(num[s] / pk.mean_k[s][busy[s]].sum()) if on else 1.0
            for s, on in enumerate(any_busy)]


def _folds_key(gb: GemmBlocks, strategy: str, dataflow: str, R: int, C: int, wb, ib: int,
               fmt: IndexFormat | None) -> tuple:
    if strategy == "compact":
        return (dataflow, strategy, gb.content_key, R, C, wb, ib, str(fmt))
    return (dataflow, strategy, gb.content_key, R, C, wb)


def pass_structure(gb: GemmBlocks, strategy: str, acc: Accelerator, dataflow: str,
                   wb: int | float):
    """One pass over W (ws `WsFolds`, os `OsSlabs`), from the bounded cache
    `hwmodels.sweepcache.FOLDS`: it depends on the mask, the array shape, the strategy, the
    index format, the bytes of one W element (`wb`: a weight's or, for the attention GEMMs, an
    activation's) and the index bytes only (not on clock, bandwidth or buffers)."""
    return pass_structures([gb], strategy, acc, dataflow, [wb])[0]


def pass_structures(gbs: Sequence[GemmBlocks], strategy: str, acc: Accelerator,
                    dataflow: str, wbs: Sequence[int | float]) -> list:
    """`pass_structure` of every mask of `gbs` (with its element bytes in `wbs`). Those not in
    the cache are built together, one stack per shape class (equal grid, block and matrix
    shapes and element bytes): each step is one numpy call over the stack instead of one per
    mask, with the same integers and floating-point operations per mask, so every structure
    equals the one built alone (tests/hwmodels/test_stacked_folds.py)."""
    R, C = acc.pe_array.rows, acc.pe_array.cols
    ib = acc.index_bytes
    fmt = _index_format(acc.index_format) if strategy == "compact" else None
    keys = [_folds_key(gb, strategy, dataflow, R, C, wb, ib, fmt) for gb, wb in zip(gbs, wbs)]
    out = [FOLDS.peek(k) for k in keys]
    classes: dict[tuple, list[int]] = {}
    for i, (gb, wb) in enumerate(zip(gbs, wbs)):
        if out[i] is None:
            classes.setdefault((gb.grid.shape, gb.bk, gb.bn, gb.k, gb.n, wb), []).append(i)
    for (*_, wb), idx in classes.items():
        st = GridStack([gbs[i] for i in idx])
        if strategy == "compact":
            built = (_ws_compact_folds(st, R, C, wb, ib, fmt) if dataflow == "ws"
                     else _os_compact_slabs(st, C, wb, ib, fmt))
        else:
            built = (_ws_tile_folds(st, strategy, R, C, wb) if dataflow == "ws"
                     else _os_tile_slabs(st, strategy, R, C, wb))
        for i, value in zip(idx, built):
            out[i] = FOLDS.put(keys[i], value)
    return out


# --------------------------------------------------------------------------- weight stationary
@dataclass(frozen=True, eq=False)
class WsFolds:
    """One pass over W (one M chunk) in execution order, column tile j major: an entry per fold,
    plus a store-only entry for a column tile whose weight tiles are all skipped."""

    compact: bool
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

    @property
    def entries(self) -> int:
        """Entries of one pass (the last column tile's last entry is the last)."""
        return int(self.tile_last[-1]) + 1 if self.tile_last.size else 0

    @derived
    def jj(self) -> np.ndarray:
        """The column tile of each entry (from the column tiles' last entries)."""
        count = np.empty_like(self.tile_last)
        count[0] = self.tile_last[0] + 1
        count[1:] = self.tile_last[1:] - self.tile_last[:-1]
        return _read_only(np.arange(count.size).repeat(count))


@dataclass(frozen=True, eq=False)
class _Entries:
    """The j-major entry layout of the `WsFolds` of a stack of masks, all masks' entries one
    after another: column tile j of mask s gets max(folds, 1) entries (a store-only one when
    it has none)."""

    count: np.ndarray  # [S * nNt] entries per column tile
    last: np.ndarray  # [S * nNt] flat index of each column tile's last entry
    offsets: np.ndarray  # [S + 1] first flat entry of each mask
    n_real: list  # per mask: folds (entries that use the array)
    psum_cols: list  # per mask: sum over folds of their column tile's width
    first_cols: list  # per mask: width of the column tiles with at least one fold

    def per_entry(self, full: np.ndarray, last: np.ndarray) -> np.ndarray:
        """A flat per-entry array from per-column-tile values [S, nNt]: `full` on a tile's
        entries but its last, `last` on its last entry."""
        out = full.ravel().repeat(self.count)
        out[self.last] = last.ravel()
        return out

    def tile_last(self, s: int) -> np.ndarray:
        """Mask s's entry of each column tile's last fold (its own numbering)."""
        n = self.count.size // (self.offsets.size - 1)
        return self.last[s * n:(s + 1) * n] - self.offsets[s]


def _tile_entries(folds_j: np.ndarray, cols: int, n: int) -> _Entries:
    """`_Entries` from the folds per column tile [S, nNt]."""
    S, nNt = folds_j.shape
    count = np.maximum(folds_j, 1).ravel()
    ends = count.cumsum()
    offsets = np.zeros(S + 1, np.int64)
    offsets[1:] = ends[nNt - 1::nNt]
    n_len = _edge_sizes(n, cols)
    return _Entries(count=count, last=ends - 1, offsets=offsets,
                    n_real=folds_j.sum(axis=-1).tolist(), psum_cols=(folds_j @ n_len).tolist(),
                    first_cols=((folds_j > 0) @ n_len).tolist())


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
    full = np.maximum(0, cycles(np.full(packed_k.shape, rows, np.int64)) - rows)
    return full, np.maximum(0, cycles(rem) - rows)


def _ws_compact_folds(st: GridStack, rows: int, cols: int, wb: int | float, ib: int,
                      fmt: IndexFormat) -> list[WsFolds]:
    """Per column tile j, ceil(packed K_j / R) folds of K = R but the last (the remainder),
    or one store-only entry when K_j = 0; every per-fold figure is computed per tile (a full
    fold's and the last fold's) and laid out over the entries (`_Entries.per_entry`)."""
    pk, lay = column_tile_packing(st, cols), index_layout(st, cols, fmt, ib)
    packed = pk.packed_k  # [S, nNt]
    folds_j = -(-packed // rows)  # ceil
    # one entry per fold, plus a store-only pseudo-fold for an empty column tile
    e = _tile_entries(folds_j, cols, st.n)
    rem = packed - np.maximum(folds_j - 1, 0) * rows  # the last fold's remainder (or 0)
    seg = e.per_entry(np.full(packed.shape, rows, np.int64), rem)
    den = np.maximum(packed, 1)
    frac_full, frac_last = rows / den, rem / den  # a fold's share of its tile (0: store-only)
    w_tile_bytes = pk.kept_elems * wb + lay.bytes  # per column tile
    index = e.per_entry(*_ws_fold_index_cycles(lay, fmt, packed, rem, st.bk, ib, rows))
    frac = e.per_entry(frac_full, frac_last)
    busy = packed > 0  # the first column tile with a fold loads X (its entries: its folds)
    first = busy & (np.cumsum(busy, axis=-1) == 1)
    x_resident = np.where(first.ravel().repeat(e.count), frac, 0.0)
    w_load = e.per_entry(frac_full * w_tile_bytes, frac_last * w_tile_bytes)
    x_stream_k = e.per_entry(frac_full * pk.used_k, frac_last * pk.used_k)  # gathered K
    real = seg > 0
    sums = [x.sum(axis=-1).tolist() for x in (pk.kept_elems, folds_j, pk.gathered_k,
                                               w_tile_bytes, lay.bytes)]
    imbalance = _packing_imbalance(pk)
    out = []
    for s, gb in enumerate(st.members):
        a, b = e.offsets[s], e.offsets[s + 1]
        out.append(make(  # = WsFolds(...), every field given
            WsFolds, compact=True, real=real[a:b], seg=seg[a:b], w_load=w_load[a:b],
            index=index[a:b], used_k_total=gb.used_k_total, x_resident=x_resident[a:b],
            x_stream_k=x_stream_k[a:b], exec_elems=int(sums[0][s]),
            tiles_total=int(sums[1][s]), tiles_skipped=0,
            in_read_k=int(sums[2][s]),  # per streamed row, summed over groups
            w_read_bytes=int(sums[3][s]), index_bytes=int(sums[4][s]),
            load_imbalance=imbalance[s], tile_last=e.tile_last(s), n_real=e.n_real[s],
            psum_cols=e.psum_cols[s], first_cols=e.first_cols[s]))
    return out


def _ws_tile_folds(st: GridStack, strategy: str, rows: int, cols: int,
                   wb: int | float) -> list[WsFolds]:
    k_len, n_len = _edge_sizes(st.k, rows), _edge_sizes(st.n, cols)
    occ = _occupancy(st, strategy, rows, cols)  # [S, nKt, nNt]
    occT = np.ascontiguousarray(occ.transpose(0, 2, 1))  # [S, nNt, nKt]: j-major order
    occ64 = occ.astype(np.int64)
    folds_j = occ64.sum(axis=1)  # [S, nNt]
    present = occT  # the entries: kept tiles, and a store-only one for a tile without folds
    if not folds_j.all():
        present = occT.copy()
        present[folds_j == 0, 0] = True
    # per-entry values taken from per-tile tables at the entries' flat grid positions
    flat = np.flatnonzero(present)  # j-major order within each mask
    S, nNt, nKt = occT.shape
    tab_w = k_len * n_len[:, None] * wb  # k_len[i] * n_len[j] * wb of tile (j, i)
    seg = _take_tiled(np.broadcast_to(k_len, tab_w.shape), S, flat)
    w_load = _take_tiled(tab_w.astype(np.float64), S, flat)  # (float64 of the same values)
    first_j = np.argmax(occ, axis=2)  # [S, nKt] first column tile that needs k slice i
    first = np.zeros(occT.size, bool)  # the tile (s, first_j[s, i], i) of every k slice
    first[(np.arange(S)[:, None] * nNt + first_j) * nKt + np.arange(nKt)] = True
    x_first = first.take(flat)
    if present is occT:
        real = np.ones(flat.size, bool)
    else:
        real = occT.ravel().take(flat)
        seg, x_first = np.where(real, seg, 0), x_first & real
        w_load = np.where(real, w_load, 0.0)
    k_per_tile = k_len @ occ64  # [S, nNt] K streamed per row by each column tile
    exec_elems = (k_per_tile @ n_len).tolist()
    e = _tile_entries(folds_j, cols, st.n)
    index = np.zeros(seg.size, np.int64)
    x_stream_k = seg.astype(np.float64)
    x_resident = np.where(x_first, x_stream_k, 0.0)  # (x_first * seg) as floats
    used_k_total = (occ.any(axis=2) @ k_len).tolist()
    in_read_k = k_per_tile.sum(axis=-1).tolist()  # K streamed per row, summed over tiles
    size = occ[0].size
    out = []
    for s in range(len(st.members)):
        a, b = e.offsets[s], e.offsets[s + 1]
        out.append(make(  # = WsFolds(...), every field given
            WsFolds, compact=False, real=real[a:b], seg=seg[a:b], w_load=w_load[a:b],
            index=index[a:b], used_k_total=int(used_k_total[s]), x_resident=x_resident[a:b],
            x_stream_k=x_stream_k[a:b], exec_elems=int(exec_elems[s]), tiles_total=size,
            tiles_skipped=size - e.n_real[s], in_read_k=int(in_read_k[s]),
            w_read_bytes=int(exec_elems[s]) * wb, index_bytes=0, load_imbalance=1.0,
            tile_last=e.tile_last(s), n_real=e.n_real[s], psum_cols=e.psum_cols[s],
            first_cols=e.first_cols[s]))
    return out


def _take_tiled(table: np.ndarray, times: int, flat: np.ndarray) -> np.ndarray:
    """`np.tile(table, (times, 1)).ravel().take(flat)`: the entries of a per-tile table at flat
    positions of a [times, *table.shape] grid (a constant table: no gather)."""
    first = table.flat[0]
    if (table == first).all():
        return np.full(flat.size, first, table.dtype)
    return np.tile(table, (times, 1)).ravel().take(flat)


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


def _os_compact_slabs(st: GridStack, cols: int, wb: int | float, ib: int,
                      fmt: IndexFormat) -> list[OsSlabs]:
    """The decoder reads a slab's new index bits (see `IndexLayout`) while the slab streams;
    only the excess over the stream is charged."""
    pk, lay = column_tile_packing(st, cols), index_layout(st, cols, fmt, ib)
    decode = -(-lay.bits // INDEX_DECODE_BITS_PER_CYCLE)
    w_bytes = pk.kept_elems * wb + lay.bytes
    index_cycles = np.maximum(0, decode - pk.packed_k)
    imbalance = _packing_imbalance(pk)
    tiles = int(pk.packed_k.shape[-1])
    return [OsSlabs(
        streamed_k=pk.packed_k[s], w_bytes=w_bytes[s], index_bytes=lay.bytes[s],
        index_cycles=index_cycles[s], used_k=pk.used_k[s], used_k_total=gb.used_k_total,
        exec_per_row=pk.kept_elems[s], in_read_k=pk.gathered_k[s], tiles_total=tiles,
        tiles_skipped=0, load_imbalance=imbalance[s]) for s, gb in enumerate(st.members)]


def _os_skip_step(bk: int, strategy: str, rows: int) -> int:
    """K positions per skip unit of an os column slab (masks with block height `bk`).

    In os a PE row holds one output row (M) and a PE column one output column (N); K is time:
    at step t every column consumes W[k_t, n_j] and every row X[m_i, k_t]. A step can be skipped
    for the whole slab exactly when W[k_t, n] = 0 for every n of the slab, so the array height R
    plays no part; a block mask's zeros along K come in runs of its block height bk, which makes
    one block row (bk steps) of a slab the skip unit. Without skipping: chunks of R (the count of
    the dense schedule, unchanged)."""
    return bk if strategy == "tile-skip" else rows


def _os_tile_slabs(st: GridStack, strategy: str, rows: int, cols: int,
                   wb: int | float) -> list[OsSlabs]:
    step = _os_skip_step(st.bk, strategy, rows)
    k_len, n_len = _edge_sizes(st.k, step), _edge_sizes(st.n, cols)
    occ = _occupancy(st, strategy, step, cols)  # [S, nKt, nNt]
    streamed = (k_len[:, None] * occ).sum(axis=1)
    none = np.zeros(n_len.size, np.int64)
    w_bytes, exec_per_row = streamed * n_len * wb, streamed * n_len
    used_k_total = (occ.any(axis=2) @ k_len).tolist()
    kept = occ.sum(axis=(1, 2)).tolist()
    size = occ[0].size
    return [OsSlabs(
        streamed_k=streamed[s], w_bytes=w_bytes[s], index_bytes=none, index_cycles=none,
        used_k=streamed[s], used_k_total=int(used_k_total[s]), exec_per_row=exec_per_row[s],
        in_read_k=streamed[s], tiles_total=size, tiles_skipped=int(size - kept[s]),
        load_imbalance=1.0) for s in range(len(st.members))]
