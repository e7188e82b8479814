"""Analytical engine: closed forms over a fold schedule (numpy, no per-fold Python loop).

Each fold i needs a_i = load_bytes_i / bandwidth DMA cycles before it, b_i = stream + fill +
index cycles on the array, and s_i = store_bytes_i / bandwidth DMA cycles after it. One DMA
engine serves loads and stores.

* Without double buffering everything serialises: T = sum(a_i + b_i + s_i).
* With double buffering the DMA runs ahead of the array, by how much depends on the buffers.
  Two closed forms bound it: the two-stage flow-shop makespan with unbounded prefetch (Johnson
  1954), LOWER = max_k ( sum_{j<=k} a'_j + sum_{j>=k} b_j ) + tail, and the lock-step schedule
  where the DMA is at most one fold ahead, UPPER = a'_0 + sum_i max(b_i, a'_{i+1}) + b_last +
  tail. We report their midpoint. a'_i is fold i's load plus the share of earlier stores written
  during it: the store of an output tile that took L folds is spread evenly over the next L folds
  (writes drain in the background at lower priority than reads, as in the event engine); what is
  left after the last fold (at least the last tile's store) is the tail. When the folds are alike
  (dense GEMMs) LOWER and UPPER nearly coincide; with bursty transfers and a DMA-bound op the
  event engine (ping-pong buffers, one weight tile / input block ahead) lands between them.

stall = T - sum(b) (cycles the array waits for memory); total = compute + fill/drain + index +
stall (GEMM) or vector + stall (vector op).
"""
from __future__ import annotations

import numpy as np

from ..mapping import Schedule
from . import ENGINES
from .timing import Timing

ENGINE_VERSION = ENGINES["analytical"]


def makespan(busy: np.ndarray, load_cyc: np.ndarray, store_cyc: np.ndarray,
             double_buffering: bool, *, stores: np.ndarray | None = None,
             busy_cumsum: np.ndarray | None = None) -> float:
    """Total cycles of a fold sequence (see the module docstring). Optional, when the caller
    has them: `stores`, the indices of the folds with store cycles > 0; `busy_cumsum`, the
    running sum of `busy` when `busy` holds whole numbers (then every suffix sum is exact and
    taken from it: the same values as summing from the end)."""
    if busy.size == 0:
        return 0.0
    if not double_buffering:
        return float(busy.sum() + load_cyc.sum() + store_cyc.sum())
    st = store_cyc.nonzero()[0] if stores is None else stores  # store cycles are >= 0
    return _overlapped(busy, load_cyc, st, store_cyc[st], busy_cumsum)


def _overlapped(busy: np.ndarray, load_cyc: np.ndarray, st: np.ndarray, stored: np.ndarray,
                busy_cumsum: np.ndarray | None) -> float:
    """`makespan` with double buffering, given the folds that store (`st`) and their store
    cycles (`stored`)."""
    n = busy.size
    tail = 0.0
    if st.size:
        # a tile = the folds after the previous store up to and including this one
        length = np.empty_like(st)  # (np.diff(st, prepend=-1), without its wrapper)
        length[0] = st[0] + 1
        np.subtract(st[1:], st[:-1], out=length[1:])
        chunk = stored / length
        begin = st + 1
        end = np.minimum(begin + length, n)
        inside = np.maximum(end - begin, 0)
        # (0 + x is x for the non-negative sums of bincount: the zeros(n + 1) start is dropped)
        diff = np.bincount(np.minimum(begin, n), weights=chunk, minlength=n + 1)
        diff -= np.bincount(end, weights=chunk, minlength=n + 1)
        tail = float((stored - chunk * inside).sum())
        dma = load_cyc + diff.cumsum()[:n]
    else:
        dma = load_cyc + 0.0  # (a copy: + the zero running sum of no stores)
    a_cum = dma.cumsum()
    if busy_cumsum is None:
        b_suf = np.cumsum(busy[::-1])[::-1]
    else:
        b_suf = (busy_cumsum[-1] - busy_cumsum) + busy
    lower = float((a_cum + b_suf).max() + tail)
    # lock-step: the DMA works at most one fold ahead of the array
    upper = float(dma[0] + np.maximum(busy[:-1], dma[1:]).sum() + busy[-1] + tail)
    return 0.5 * (lower + upper)


def time_schedule(s: Schedule, bytes_per_cycle: float, double_buffering: bool) -> Timing:
    """The op's cycles: the midpoint of the two closed forms (see the module docstring)."""
    if s.count == 1:  # (s.repeated, without its generator)
        load, store = s.weight_load + s.input_load, s.store_bytes
    else:
        load, store = s.repeated("load_bytes", "store_bytes")
    busy = s.busy_cycles
    if not double_buffering or busy.size == 0:
        total = makespan(busy, load / bytes_per_cycle, store / bytes_per_cycle,
                         double_buffering)
    else:  # only the storing folds' store cycles are read: divided alone (the same values)
        st = s.store_folds
        total = _overlapped(busy, load / bytes_per_cycle, st, store[st] / bytes_per_cycle,
                            s.busy_cumsum)
    return Timing.of_sums(s.kind, total, s.work_sums)


# --------------------------------------------------------------------------- many bandwidths
def makespan_batch(busy: np.ndarray, load_bytes: np.ndarray, store_bytes: np.ndarray,
                   bytes_per_cycle: np.ndarray, double_buffering: bool, *,
                   stores: np.ndarray | None = None,
                   busy_cumsum: np.ndarray | None = None) -> np.ndarray:
    """`makespan(busy, load_bytes / b, store_bytes / b, double_buffering)` for every b of
    `bytes_per_cycle` at once (one row per b). The same floating-point operations in the same
    order, so each entry equals the scalar call exactly (tests/hwmodels/test_speed_cache.py).
    `stores`, `busy_cumsum`: as in `makespan`."""
    bpc = np.asarray(bytes_per_cycle, np.float64)
    if busy.size == 0:
        return np.zeros(bpc.size)
    if bpc.size == 1:  # one bandwidth: the scalar form (fewer array passes, the same result)
        b = bpc.reshape(1)[0]
        return np.array([makespan(busy, load_bytes / b, store_bytes / b, double_buffering,
                                  stores=stores, busy_cumsum=busy_cumsum)])
    load_cyc = load_bytes[None, :] / bpc[:, None]
    store_cyc = store_bytes[None, :] / bpc[:, None]
    if not double_buffering:
        return busy.sum() + load_cyc.sum(axis=1) + store_cyc.sum(axis=1)
    n = busy.size
    # store_bytes / b > 0 exactly when store_bytes > 0
    st = np.flatnonzero(store_bytes > 0) if stores is None else stores
    tail = np.zeros(bpc.size)
    diff = np.zeros((bpc.size, n + 1))
    if st.size:
        prev = np.empty_like(st)
        prev[0] = -1
        prev[1:] = st[:-1]
        length = st - prev
        chunk = store_cyc[:, st] / length
        begin = st + 1
        end = np.minimum(begin + length, n)
        inside = np.clip(end - begin, 0, None)
        # bincount(begin) (distinct indices) then bincount(end) (repeats add up in order)
        add = np.zeros((bpc.size, n + 1))
        add[:, np.minimum(begin, n)] = chunk
        sub = np.zeros((bpc.size, n + 1))
        np.add.at(sub, (slice(None), end), chunk)
        diff += add
        diff -= sub
        tail = (store_cyc[:, st] - chunk * inside).sum(axis=1)
    dma = load_cyc + np.cumsum(diff, axis=1)[:, :n]
    a_cum = np.cumsum(dma, axis=1)
    b_suf = (np.cumsum(busy[::-1])[::-1] if busy_cumsum is None
             else (busy_cumsum[-1] - busy_cumsum) + busy)
    lower = np.max(a_cum + b_suf, axis=1) + tail
    upper = dma[:, 0] + np.maximum(busy[:-1], dma[:, 1:]).sum(axis=1) + busy[-1] + tail
    return 0.5 * (lower + upper)


def time_schedule_batch(s: Schedule, bytes_per_cycle: np.ndarray,
                        double_buffering: bool) -> Timing:
    """`time_schedule` for many DRAM bandwidths (bytes per cycle) at once: a Timing whose
    total and stall cycles are arrays over them, equal entry by entry to the scalar calls."""
    load, store = s.repeated("load_bytes", "store_bytes")
    total = makespan_batch(s.busy_cycles, load, store, bytes_per_cycle, double_buffering,
                           stores=s.store_folds, busy_cumsum=s.busy_cumsum)
    return Timing.of_sums(s.kind, total, s.work_sums)
