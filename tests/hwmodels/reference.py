"""A register-level functional reference of the systolic array, for small GEMMs (test-only).

`run_reference` computes Y[M,N] = X[M,K] @ (W[K,N] * keep) on an R x C PE array by moving
values through per-PE registers one cycle at a time, checks Y against numpy exactly, and counts
the cycles from the first weight/input load to the last output. It is an independent model of
the schedules that `hwmodels.mapping` counts in closed form; it shares no code with hwmodels (the
block mask is given in GEMM orientation, grid[kb, nb] over W[K, N], block bk along K x bn along
N: the caller transposes the parameter-orientation `BlockMask` itself).

What it models, per fold (one use of the array), folds strictly one after another (`serial`
weight preload: SCALE-Sim's counting):

* **ws** (weight stationary): the fold's R x C weight tile is shifted into the weight registers
  from the top edge, one row per cycle (R cycles). Then X rows stream: PE row r receives input
  m at cycle m + r (skew) at its group's first column and passes it one PE right per cycle;
  partial sums move one PE down per cycle and leave the bottom edge, where the output buffer
  accumulates them over the K folds of a column tile. The fold ends when its last output has left.
* **os** (output stationary): PE (r, c) accumulates Y[m_r, n_c]; X values enter at the left edge
  (at each group's first column) and move right, W values enter at the top and move down, both
  skewed so that position s of the K stream meets at PE (r, c) in cycle s + r + c. The fold ends
  with its last MAC (outputs leave through shadow registers behind the next fold; SCALE-Sim
  charges no OS drain either).
* **dense**: every tile/fold is run, zeros of the mask multiplied.
* **tile-skip**: ws skips an R x C weight tile whose masked weights are all zero (not loaded, not
  streamed). os skips, per column slab of C outputs, the K chunks of `os_skip_k` positions
  (default: the block's K extent bk, aligned to the block rows) whose masked weights are all zero;
  the rest is streamed densely. A slab or column tile with nothing left runs no fold.
* **compact**: per column tile of C PE columns, every block column (bn outputs) that intersects
  the tile is a *group* of PE columns with its own gathered input stream; its kept blocks are
  packed along K in ascending block order (edge blocks at their real size); the longest packed
  group sets the tile's length (ws: ceil(L / R) folds of R packed rows; os: L streamed
  positions). Shorter groups run zeros.
* **index decoding** (compact only): one index of `index_bytes` per (group, block) the fold uses,
  stored in the order the blocks are consumed, read by one decoder at one 64-bit word per cycle
  from the fold's first cycle. ws: the stream starts when the preload is done and every index of
  the fold is decoded (it sets the gather addresses of all PE rows). os: the whole array freezes
  (clock enable off) in a cycle where the next K position starts a block whose index word has
  not been read yet. Frozen cycles are reported as `index_cycles`.
* **edges**: ``"padded"`` (SCALE-Sim's convention) runs edge folds as full R x C tiles of zeros:
  all R weight rows are shifted in and the count runs to the last (padding) column's output;
  ``"trimmed"`` shifts in only the used weight rows and stops at the last real output.

What it ignores: memory (operands are always there: ideal DRAM and buffers), the vector unit,
bias and requantisation, bank conflicts of the input gather, and the output drain of the last OS
fold. `preload="overlapped"` (next fold's weights loaded while the current one streams) is a hook
that raises NotImplementedError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DATAFLOWS = ("ws", "os")
STRATEGIES = ("dense", "tile-skip", "compact")
EDGES = ("padded", "trimmed")
DECODER_WORD_BYTES = 8  # the index decoder reads one 64-bit word per cycle (hwmodels' stated port)


@dataclass(frozen=True)
class RefResult:
    """What the reference measured: Y, cycles (all folds, serial), of which index-decoder stalls,
    the folds run, and the compaction load imbalance (sum of longest / sum of mean packed K over
    the column tiles that run; 1 without compaction)."""

    y: np.ndarray
    cycles: int
    index_cycles: int
    folds: int
    load_imbalance: float
    fold_cycles: tuple[int, ...] = field(repr=False)
    #: per fold: 64-bit index words the decoder reads, and the K positions (ws: packed weight
    #: rows, os: stream positions) the fold runs; these state the index bounds of the tests
    fold_index_words: tuple[int, ...] = field(repr=False, default=())
    fold_positions: tuple[int, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class _Group:
    """A PE column group of a column tile: PE columns [c0, c1) and its packed K positions."""

    c0: int
    c1: int
    seq: np.ndarray  # K index of each packed position
    starts: tuple[int, ...]  # packed positions where a block (one index) starts


@dataclass(frozen=True)
class _Fold:
    """One use of the array: what each PE holds or streams (see the two `_*_fold` runners)."""

    kidx: np.ndarray  # ws [R, C]: K index each PE multiplies; os [C, L]: K index per position
    inj: np.ndarray  # [C] bool: input injection columns (first column of each group)
    ncol: np.ndarray  # [C] output column of each PE column (-1: padding)
    mrow: np.ndarray  # [R] os: output row of each PE row (-1: padding); ws: unused
    rows_used: int  # ws: weight rows used (trimmed preload)
    starts: np.ndarray  # one entry per index the fold reads (os: the position consuming it, sorted)


def _ranges(total: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def _groups(keep_grid: np.ndarray, k: int, bk: int, bn: int, n0: int, n1: int) -> list[_Group]:
    """The compaction groups of column tile [n0, n1): every block column intersecting it."""
    k_blocks = _ranges(k, bk)
    out = []
    for b in range(n0 // bn, (n1 - 1) // bn + 1):
        kept = [kb for kb in range(len(k_blocks)) if keep_grid[kb, b]]
        seq = [np.arange(*k_blocks[kb]) for kb in kept]
        lens = [len(s) for s in seq]
        starts = tuple(int(v) for v in np.cumsum([0] + lens[:-1])) if kept else ()
        out.append(_Group(c0=max(n0, b * bn) - n0, c1=min(n1, (b + 1) * bn) - n0,
                          seq=np.concatenate(seq) if seq else np.zeros(0, np.int64),
                          starts=starts))
    return out


def _imbalance(tiles: list[list[_Group]]) -> float:
    longest = [max(len(g.seq) for g in gs) for gs in tiles]
    mean = [sum(len(g.seq) for g in gs) / len(gs) for gs in tiles]
    busy = [i for i, v in enumerate(longest) if v > 0]
    return sum(longest[i] for i in busy) / sum(mean[i] for i in busy) if busy else 1.0


# --------------------------------------------------------------------------- fold plans
def _ws_plans(keep: np.ndarray, grid: np.ndarray, *, strategy: str, rows: int, cols: int,
              bk: int, bn: int) -> tuple[list[_Fold], float]:
    """Folds in execution order (column tile major, then K) and the load imbalance."""
    k, n = keep.shape
    folds, tiles = [], []
    for n0, n1 in _ranges(n, cols):
        ncol = np.full(cols, -1)
        ncol[: n1 - n0] = np.arange(n0, n1)
        if strategy != "compact":
            inj = np.zeros(cols, bool)
            inj[0] = True
            for k0, k1 in _ranges(k, rows):
                if strategy == "tile-skip" and not keep[k0:k1, n0:n1].any():
                    continue
                kidx = np.full((rows, cols), -1)
                kidx[: k1 - k0] = np.arange(k0, k1)[:, None]
                folds.append(_Fold(kidx, inj, ncol, np.zeros(0, int), k1 - k0, np.zeros(0, int)))
            continue
        groups = _groups(grid, k, bk, bn, n0, n1)
        tiles.append(groups)
        inj = np.zeros(cols, bool)
        inj[[g.c0 for g in groups]] = True
        length = max(len(g.seq) for g in groups)
        for p0 in range(0, length, rows):
            kidx = np.full((rows, cols), -1)
            n_idx = 0
            for g in groups:
                part = g.seq[p0:p0 + rows]
                kidx[: part.size, g.c0:g.c1] = part[:, None]
                # blocks this fold uses: those whose packed range meets [p0, p0 + rows)
                ends = list(g.starts[1:]) + [len(g.seq)]
                n_idx += sum(1 for s, e in zip(g.starts, ends) if s < p0 + rows and e > p0)
            folds.append(_Fold(kidx, inj, ncol, np.zeros(0, int),
                               min(rows, length - p0), np.zeros(n_idx, int)))
    return folds, (_imbalance(tiles) if tiles else 1.0)


def _os_plans(keep: np.ndarray, grid: np.ndarray, m: int, *, strategy: str, rows: int,
              cols: int, bk: int, bn: int, skip_k: int) -> tuple[list[_Fold], float]:
    """Folds in execution order (row tile major, then column slab) and the load imbalance."""
    k, n = keep.shape
    slabs, tiles = [], []
    for n0, n1 in _ranges(n, cols):
        ncol = np.full(cols, -1)
        ncol[: n1 - n0] = np.arange(n0, n1)
        inj = np.zeros(cols, bool)
        if strategy == "compact":
            groups = _groups(grid, k, bk, bn, n0, n1)
            tiles.append(groups)
            length = max(len(g.seq) for g in groups)
            seq = np.full((cols, length), -1)
            for g in groups:
                seq[g.c0:g.c1, : g.seq.size] = g.seq[None, :]
            inj[[g.c0 for g in groups]] = True
            starts = np.sort(np.concatenate([np.array(g.starts, int) for g in groups]))
        else:
            chunks = [np.arange(a, b) for a, b in _ranges(k, skip_k)
                      if strategy == "dense" or keep[a:b, n0:n1].any()]
            line = np.concatenate(chunks) if chunks else np.zeros(0, int)
            seq = np.repeat(line[None, :], cols, axis=0)
            inj[0] = True
            starts = np.zeros(0, int)
        if seq.shape[1]:
            slabs.append((seq, inj, ncol, starts))
    folds = []
    for m0, m1 in _ranges(m, rows):
        mrow = np.full(rows, -1)
        mrow[: m1 - m0] = np.arange(m0, m1)
        folds += [_Fold(seq, inj, ncol, mrow, 0, starts) for seq, inj, ncol, starts in slabs]
    return folds, (_imbalance(tiles) if tiles else 1.0)


# --------------------------------------------------------------------------- register machines
def _shift_right(reg: np.ndarray, fill) -> np.ndarray:
    out = np.empty_like(reg)
    out[:, 0] = fill
    out[:, 1:] = reg[:, :-1]
    return out


def _shift_down(reg: np.ndarray, fill) -> np.ndarray:
    out = np.empty_like(reg)
    out[0] = fill
    out[1:] = reg[:-1]
    return out


def _ws_fold(x: np.ndarray, w: np.ndarray, f: _Fold, edges: str,
             index_bytes: int) -> tuple[np.ndarray, int, int]:
    """Run one ws fold: (outputs [M, C] leaving the bottom edge, cycles, index-stall cycles)."""
    rows, cols = f.kidx.shape
    m = x.shape[0]
    kk = np.clip(f.kidx, 0, None)
    nn = np.clip(f.ncol, 0, None)[None, :]
    tile = np.where((f.kidx >= 0) & (f.ncol >= 0)[None, :], w[kk, nn], 0.0)
    # preload: weight rows enter at the top, deepest row first; the decoder runs alongside
    n_load = rows if edges == "padded" else f.rows_used
    words = -(-f.starts.size * index_bytes // DECODER_WORD_BYTES)
    wreg, t, read = np.zeros((rows, cols)), 0, 0
    while t < n_load or read < words:
        if t < n_load:
            wreg = _shift_down(wreg, tile[n_load - 1 - t])
        read = min(words, read + 1)
        t += 1
    assert np.array_equal(wreg, tile), "ws preload left the wrong weights in the PEs"
    stall = t - n_load
    rr, cc = np.indices((rows, cols))
    inj = np.broadcast_to(f.inj[None, :], (rows, cols))
    want = np.ones(cols, bool) if edges == "padded" else f.ncol >= 0
    xreg, xtag = np.zeros((rows, cols)), np.full((rows, cols), -1)
    preg, ptag = np.zeros((rows, cols)), np.full((rows, cols), -1)
    out = np.zeros((m, cols))
    left, s = m * int(want.sum()), 0
    while left:
        mi = s - rr - cc
        ok = inj & (mi >= 0) & (mi < m)
        val = np.where(ok & (f.kidx >= 0), x[np.clip(mi, 0, m - 1), kk], 0.0)
        xreg = np.where(inj, val, _shift_right(xreg, 0.0))
        xtag = np.where(inj, np.where(ok, mi, -1), _shift_right(xtag, -1))
        pin, tin = _shift_down(preg, 0.0), _shift_down(ptag, -1)
        assert np.array_equal(tin[1:], xtag[1:]), "ws skew: partial sum met the wrong input"
        preg, ptag = pin + xreg * wreg, xtag
        leave = want & (ptag[-1] >= 0)
        out[ptag[-1][leave], np.flatnonzero(leave)] = preg[-1][leave]
        left -= int(leave.sum())
        s += 1
    return out, t + s, stall


def _os_fold(x: np.ndarray, w: np.ndarray, f: _Fold, edges: str,
             index_bytes: int) -> tuple[np.ndarray, int, int]:
    """Run one os fold: (accumulated outputs [R, C], cycles, index-stall cycles)."""
    rows, cols = f.mrow.size, f.ncol.size
    length = f.kidx.shape[1]
    words = -(-f.starts.size * index_bytes // DECODER_WORD_BYTES)
    # index words the stream needs before it may issue position q (blocks starting at <= q)
    need = -(-np.searchsorted(f.starts, np.arange(length), side="right") * index_bytes
             // DECODER_WORD_BYTES)
    rr, cc = np.indices((rows, cols))
    real = (f.mrow >= 0)[:, None] & (f.ncol >= 0)[None, :]
    want = np.ones((rows, cols), bool) if edges == "padded" else real
    inj = np.broadcast_to(f.inj[None, :], (rows, cols))
    xreg, xtag = np.zeros((rows, cols)), np.full((rows, cols), -1)
    wreg, wtag = np.zeros((rows, cols)), np.full((rows, cols), -1)
    acc = np.zeros((rows, cols))
    t, q, last, stall = 0, 0, -1, 0
    while q < length + rows + cols - 2:
        if q < length and need[q] > min(words, t + 1):  # the decoder is behind: freeze
            t, stall = t + 1, stall + 1
            continue
        sw = q - np.arange(cols)  # position entering each column at the top
        okw = (sw >= 0) & (sw < length)
        kw = f.kidx[np.arange(cols), np.clip(sw, 0, length - 1)]
        win = np.where(okw & (kw >= 0) & (f.ncol >= 0), w[np.clip(kw, 0, None),
                                                          np.clip(f.ncol, 0, None)], 0.0)
        wreg, wtag = _shift_down(wreg, win), _shift_down(wtag, np.where(okw, sw, -1))
        sx = q - rr - cc  # position entering each row at its group's first column
        okx = inj & (sx >= 0) & (sx < length)
        kx = f.kidx[cc, np.clip(sx, 0, length - 1)]
        xin = np.where(okx & (kx >= 0) & (f.mrow >= 0)[:, None],
                       x[np.clip(f.mrow, 0, None)[:, None], np.clip(kx, 0, None)], 0.0)
        xreg = np.where(inj, xin, _shift_right(xreg, 0.0))
        xtag = np.where(inj, np.where(okx, sx, -1), _shift_right(xtag, -1))
        assert np.array_equal(xtag, wtag), "os skew: an input met the wrong weight"
        acc += xreg * wreg
        if (want & (xtag >= 0)).any():
            last = t
        t, q = t + 1, q + 1
    return acc, last + 1, stall


# --------------------------------------------------------------------------- entry point
def run_reference(x: np.ndarray, w: np.ndarray, grid: np.ndarray, *, bk: int, bn: int,
                  rows: int, cols: int, dataflow: str, strategy: str, index_bytes: int = 2,
                  preload: str = "serial", edges: str = "padded",
                  os_skip_k: int | None = None) -> RefResult:
    """Run Y = X @ (W * keep) through the register-level array (see the module docstring).

    `grid` is the block mask in GEMM orientation ([ceil(K/bk), ceil(N/bn)], True = kept). The
    tile-skip decision reads the masked weight values, so W should have no zeros of its own.
    Asserts Y == X @ (W * keep) exactly (use integer-valued inputs)."""
    if preload == "overlapped":
        raise NotImplementedError(
            "reference: preload='overlapped' (the next fold's weights loaded while the current "
            "fold streams) is not modelled yet; add it in tests/hwmodels/reference.py")
    if preload != "serial" or dataflow not in DATAFLOWS or strategy not in STRATEGIES \
            or edges not in EDGES:
        raise ValueError(f"reference: preload {preload!r}, dataflow {dataflow!r}, strategy "
                         f"{strategy!r}, edges {edges!r}: expected serial, {DATAFLOWS}, "
                         f"{STRATEGIES}, {EDGES}")
    m, k = x.shape
    n = w.shape[1]
    if grid.shape != (math.ceil(k / bk), math.ceil(n / bn)) or w.shape[0] != k:
        raise ValueError(f"reference: grid {grid.shape} / W {w.shape} do not fit X {x.shape} "
                         f"with blocks {bk}x{bn} (GEMM orientation, K x N)")
    keep = np.repeat(np.repeat(grid.astype(bool), bk, axis=0), bn, axis=1)[:k, :n]
    wm = w * keep
    if dataflow == "ws":
        plans, imb = _ws_plans(keep, grid, strategy=strategy, rows=rows, cols=cols, bk=bk, bn=bn)
    else:
        plans, imb = _os_plans(keep, grid, m, strategy=strategy, rows=rows, cols=cols, bk=bk,
                               bn=bn, skip_k=os_skip_k or bk)
    y = np.zeros((m, n))
    cycles, stalls = [], 0
    words = tuple(-(-f.starts.size * index_bytes // DECODER_WORD_BYTES) for f in plans)
    positions = tuple(f.rows_used if dataflow == "ws" else f.kidx.shape[1] for f in plans)
    for f in plans:
        real_c = np.flatnonzero(f.ncol >= 0)
        if dataflow == "ws":
            out, cyc, stall = _ws_fold(x, wm, f, edges, index_bytes)
            y[:, f.ncol[real_c]] += out[:, real_c]  # the output buffer accumulates over K folds
        else:
            out, cyc, stall = _os_fold(x, wm, f, edges, index_bytes)
            real_r = np.flatnonzero(f.mrow >= 0)
            y[np.ix_(f.mrow[real_r], f.ncol[real_c])] = out[np.ix_(real_r, real_c)]
        cycles.append(cyc)
        stalls += stall
    expect = x @ wm
    assert np.array_equal(y, expect), (
        f"reference: Y differs from X @ (W * mask) in {int((y != expect).sum())} element(s)")
    return RefResult(y=y, cycles=int(sum(cycles)), index_cycles=stalls, folds=len(plans),
                     load_imbalance=float(imb), fold_cycles=tuple(cycles),
                     fold_index_words=words, fold_positions=positions)
