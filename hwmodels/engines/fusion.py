"""`vector_overlap: fused`: vector work overlapped with the GEMM that produces its input.

What is modelled. A *fusion group* is a GEMM and the vector ops that follow it in the workload
before the next GEMM (BERT: QK^T > softmax; attn_out > residual add > LayerNorm; ffn_in > GELU;
ffn_out > residual add > LayerNorm). The group's vector ops share the one vector unit, which
works on the GEMM's output as it leaves the array, in *granules*:
* element-wise work (GELU, residual add: the GEMM epilogue) and the statistics passes of a
  row-wise op (softmax: running max and sum of exponentials; LayerNorm: sum and sum of squares,
  the row held in a row buffer) use each output tile as soon as the fold that completes it ends;
* the last pass of a row-wise op (softmax's scale, LayerNorm's normalise + affine) needs whole
  rows: it waits for a group of complete rows (`Schedule.row_ends`: in ws the end of an M chunk,
  in os the last column tile of a row tile; per instance, e.g. per attention head).
Each vector op's work is its standalone time T_V as its engine timed it (vector passes and DRAM
stalls), spread over the granules in proportion to the output elements (row-wise ops: (p-1)/p of
it on the tiles, 1/p on the row groups, p = its passes). With granule g released at r_g (the end
of the fold that completes it) and carrying work v_g, the vector unit finishes at
``F = max_g (r_g + sum_{h >= g} v_h)`` (the recurrence F_g = max(r_g, F_{g-1}) + v_g), and the
group's vector ops show ``F - r_last`` cycles after the GEMM (r_last: the GEMM's last fold),
shared among them in proportion to T_V. Hence the GEMM alone is never shortened, at least the
last granule's work shows (the tail), a vector op longer than its producer shows the difference,
and fused is never slower than `none` (F - r_last <= sum of T_V).

Both engines implement it through their fold end times: the event engine's simulated ones
(`Timing.fold_end_cycles`); the analytical engine's are the GEMM's total spread over its folds
in proportion to their array cycles (stalls spread evenly).

Ignored: the fused ops' DRAM traffic is unchanged (they still load their input and store their
output, so bytes and energy are those of `none`; a real epilogue also saves the round trip of
the GEMM's output), and it does not compete with the GEMM's for the DMA; vector work of one
group never overlaps the next GEMM.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from ..mapping import Schedule
from ..workload import GemmOp, VectorOp
from .timing import Timing

#: vector kinds whose last pass needs complete rows (the others are element-wise)
ROW_WISE = ("softmax", "layernorm")


def fold_ends(s: Schedule, t: Timing) -> np.ndarray:
    """When each fold of the GEMM (over all instances) leaves the array: the engine's own times
    if it tracked them, else the total spread in proportion to the folds' array cycles."""
    if t.fold_end_cycles is not None:
        return np.asarray(t.fold_end_cycles, np.float64)
    cum = s.busy_cumsum
    return cum * (t.total_cycles / cum[-1]) if cum[-1] > 0 else cum


def granule_shares(s: Schedule, kind: str, passes: int) -> np.ndarray:
    """The share of one vector op's work released at each fold of its producer `s` (see the
    module docstring): element shares of the tiles, the last pass of a row-wise op on row
    groups; all of it at the last fold when the producer stores nothing."""
    store, row_ends = s.repeated("store_bytes", "row_ends")
    return _shares(store, float(store.sum()), row_ends, kind, passes)


def _shares(store: np.ndarray, total: float, row_ends: np.ndarray, kind: str,
            passes: int) -> np.ndarray:
    """`granule_shares` from the producer's store bytes and row ends (over all instances, or
    any subsequence of folds holding every storing fold, every row end and the last fold: the
    running sums over it are those of the whole sequence at its folds) and the sum of the
    store bytes over all folds (`total`)."""
    if total <= 0:
        out = np.zeros(store.size)
        out[-1] = 1.0
        return out
    tiles = store / total
    if kind not in ROW_WISE or passes < 2:
        return tiles
    cum = tiles.cumsum()
    ends = row_ends.nonzero()[0]  # (np.flatnonzero of a 1-D array)
    rows = np.zeros(store.size)
    at = cum[ends]  # np.diff(np.r_[0.0, at]), as slices
    rows[ends[:1]] = at[:1] - 0.0
    rows[ends[1:]] = at[1:] - at[:-1]
    rows[-1] += 1.0 - cum[ends[-1]] if ends.size else 1.0  # rows only complete at the end
    return (passes - 1) / passes * tiles + rows / passes


def granule_work(s: Schedule, kind: str, passes: int, cycles: float) -> np.ndarray:
    """Cycles of one vector op of `cycles` released at each fold of its producer `s`."""
    return cycles * granule_shares(s, kind, passes)


def exposed_cycles(release: np.ndarray, work: np.ndarray) -> float:
    """Cycles the vector unit runs past the last release: max_g (r_g + sum_{h>=g} v_h) - r_last."""
    suffix = work[::-1].cumsum()[::-1]
    return float(max(0.0, (release + suffix).max() - release[-1]))


def fuse_group(producer: Schedule, producer_timing: Timing, vectors: Sequence[VectorOp],
               timings: Sequence[Timing]) -> list[Timing]:
    """The timings of the vector ops of one fusion group (see the module docstring)."""
    if producer.stream.size == 0 or not vectors:
        return list(timings)
    at = (release_points(producer) if producer_timing.fold_end_cycles is None else None)
    if at is None:
        release = fold_ends(producer, producer_timing)
        work = sum(granule_work(producer, op.kind, op.passes, t.total_cycles)
                   for op, t in zip(vectors, timings))
    else:  # only the folds that release work (the same maximum: see `release_points`)
        cum = producer.busy_cumsum
        release = (cum[at] * (producer_timing.total_cycles / cum[-1]) if cum[-1] > 0
                   else cum[at])
        store, row_ends = producer.repeated("store_bytes", "row_ends")
        total, store, row_ends = float(store.sum()), store[at], row_ends[at]
        work = sum(t.total_cycles * _shares(store, total, row_ends, op.kind, op.passes)
                   for op, t in zip(vectors, timings))
    shown = exposed_cycles(release, np.asarray(work, np.float64))
    alone = sum(t.total_cycles for t in timings)
    if alone <= 0:
        return list(timings)
    return [t.exposed(shown * t.total_cycles / alone) for t in timings]


def release_points(s: Schedule) -> np.ndarray | None:
    """The folds (over all instances) at which vector work can be released behind the
    analytical engine's timing of `s`, when they are few (at most half the folds), else None:
    the storing folds, if they hold every row end and the last fold. Work is zero at every
    other fold, so the running suffix sum of work is constant from one such fold back to the
    previous one, while release times (the running sum of the array's cycles, scaled) never
    decrease: max_g (r_g + suffix_g) is reached at one of them, and the same floats are added
    and compared (tests/hwmodels/test_fusion_points.py)."""
    at = s.store_folds
    n = s.busy_cycles.size
    if at.size == 0 or 2 * at.size > n or at[-1] != n - 1:
        return None
    (row_ends,) = s.repeated("row_ends")
    if np.count_nonzero(row_ends) != np.count_nonzero(row_ends[at]):
        return None
    return at


def fused_timings(ops: Sequence[GemmOp | VectorOp], schedules: Sequence[Schedule],
                  timings: Sequence[Timing]) -> list[Timing]:
    """Every op's timing with each vector op fused behind the GEMM before it (vector ops with no
    GEMM before them keep their own timing). Groups with the same schedules are computed once."""
    return _fuse_all(ops, schedules, timings, fuse_group)


def _fuse_all(ops: Sequence[GemmOp | VectorOp], schedules: Sequence[Schedule],
              timings: Sequence[Timing], fuse: Callable[..., list[Timing]]) -> list[Timing]:
    """`fuse(producer schedule, producer timing, vector ops, their timings)` over every fusion
    group of `ops`, memoised on the identity of the group's schedules and timings."""
    out = list(timings)
    memo: dict[tuple, list[Timing]] = {}
    for i, j in fusion_groups(ops):
        key = tuple(id(x) for x in (*schedules[i:j], *timings[i:j]))
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = fuse(schedules[i], timings[i], ops[i + 1:j], timings[i + 1:j])
        out[i + 1:j] = hit
    return out


# --------------------------------------------------------------------------- many bandwidths
def fuse_group_batch(producer: Schedule, producer_timing: Timing, vectors: Sequence[VectorOp],
                     timings: Sequence[Timing]) -> list[Timing]:
    """`fuse_group` over design points at once: timings whose cycles are arrays over the points
    (from engines.analytical.time_schedule_batch); the same operations per entry."""
    if producer.stream.size == 0 or not vectors:
        return list(timings)
    cum = producer.busy_cumsum
    total = np.asarray(producer_timing.total_cycles, np.float64)
    release = (cum[None, :] * (total[:, None] / cum[-1]) if cum[-1] > 0
               else np.broadcast_to(cum, (total.size, cum.size)))
    work = sum(np.asarray(t.total_cycles, np.float64)[:, None]
               * granule_shares(producer, op.kind, op.passes)[None, :]
               for op, t in zip(vectors, timings))
    suffix = np.cumsum(work[:, ::-1], axis=1)[:, ::-1]
    shown = np.maximum(0.0, np.max(release + suffix, axis=1) - release[:, -1])
    alone = sum(np.asarray(t.total_cycles, np.float64) for t in timings)
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in timings:
            cyc = np.where(alone <= 0, t.total_cycles, shown * t.total_cycles / alone)
            vector = np.where(alone <= 0, t.vector_cycles, np.minimum(cyc, t.vector_cycles))
            out.append(replace(t, total_cycles=cyc, vector_cycles=vector,
                               stall_cycles=np.where(alone <= 0, t.stall_cycles, cyc - vector),
                               fold_end_cycles=None))
    return out


def fused_timings_batch(ops: Sequence[GemmOp | VectorOp], schedules: Sequence[Schedule],
                        timings: Sequence[Timing]) -> list[Timing]:
    """`fused_timings` over design points at once (see `fuse_group_batch`)."""
    return _fuse_all(ops, schedules, timings, fuse_group_batch)


def fusion_groups(ops: Sequence[GemmOp | VectorOp]) -> list[tuple[int, int]]:
    """(i, j) per fusion group: ops[i] a GEMM, ops[i+1:j] the vector ops after it (j > i + 1)."""
    groups, i, n = [], 0, len(ops)
    while i < n:
        if not isinstance(ops[i], GemmOp):
            i += 1
            continue
        j = i + 1
        while j < n and isinstance(ops[j], VectorOp):
            j += 1
        if j > i + 1:
            groups.append((i, j))
        i = j
    return groups
