"""The PE array's pipeline in closed form: fill/drain and exposed weight preload per fold.

What is modelled: for one op instance, how many cycles each fold adds beyond its streamed rows
(ws) or K steps (os), in SCALE-Sim's serial counting or with double-buffered weights (ws) /
accumulators (os) that overlap the next fold's preload with the current fold's stream
(`weight_preload`); and the dense ideal-memory cycle count of a GEMM in either mode, the gold
figure of the SCALE-Sim validation. What is ignored is stated per function.
"""
from __future__ import annotations

import math

import numpy as np


def ideal_compute_cycles(m: int, k: int, n: int, rows: int, cols: int, dataflow: str,
                         weight_preload: str = "serial") -> int:
    """Dense GEMM cycles with ideal memory (compute + fill/drain) in our counting, one M chunk
    (the output buffer holds M x C partial sums). Serial: SCALE-Sim's "Total Cycles" in its
    ideal (CALC) mode is this minus 1. Overlapped: the closed form of `pipeline_fill`."""
    if dataflow not in ("ws", "os"):
        raise ValueError(f"dataflow {dataflow!r}: expected 'ws' or 'os'")
    if weight_preload not in ("serial", "overlapped"):
        raise ValueError(f"weight_preload {weight_preload!r}: expected 'serial' or 'overlapped'")
    if dataflow == "ws":
        folds, stream, first = math.ceil(k / rows) * math.ceil(n / cols), m, rows
    else:
        folds, stream, first = math.ceil(m / rows) * math.ceil(n / cols), k, 0
    if weight_preload == "serial":
        return folds * (stream + first + rows + cols - 2)
    return first + (folds - 1) * max(stream, rows) + stream + rows + cols - 2


def pipeline_fill(stream: np.ndarray, real: np.ndarray, rows: int, cols: int, dataflow: str,
                  weight_preload: str, *, min_stream: int | None = None) -> np.ndarray:
    """Fill/drain (+ exposed weight preload) cycles per fold of one op instance.

    serial (SCALE-Sim): every fold pays them in full, ws ``2R + C - 2`` (R preload, R - 1 input
    skew, C - 1 partial-sum drain), os ``R + C - 2`` (skew).
    overlapped, ws (double-buffered weight registers): fold i+1's R x C weights shift into the
    shadow registers (R cycles) while fold i streams its M rows, and its first row enters right
    behind fold i's last, so fold starts are max(M_i, R) apart and the skew/drain is paid once:
    ``T = R + sum_{i<n-1} max(M_i, R) + M_last + R + C - 2``, i.e. ``n M + 2R + C - 2`` for
    M >= R (serial: ``n (M + 2R + C - 2)``).
    overlapped, os (double-buffered accumulators): tile i's R results per column shift out of
    the shadow accumulators (R cycles) while tile i+1 accumulates its K-long stream:
    ``T = sum_{i<n-1} max(K_i, R) + K_last + R + C - 2`` (no preload: both operands stream).
    Per fold this is charged as: the first real fold R (ws) or 0 (os), every later real fold
    max(0, R - stream of the previous real fold), and the last real fold R + C - 2 more.
    Ignored: a DRAM stall before a fold also delays its shadow preload (charged as if the
    preload had overlapped the previous fold); the pipeline drains between op instances and ops.
    `min_stream`, when the caller knows it: no more than the stream of any real fold (if it
    is >= `rows` no later fold waits for its preload, and only the first and last real folds
    are found, without the per-fold maximum; the same array).
    """
    if weight_preload == "serial":
        return real * ((2 * rows if dataflow == "ws" else rows) + cols - 2)  # int64
    fill = np.zeros(real.size, np.int64)
    if min_stream is not None and min_stream >= rows:  # every max(0, rows - stream) is 0
        first = int(real.argmax()) if real.size else 0
        if not real.size or not real[first]:
            return fill
        last = real.size - 1 - int(real[::-1].argmax())
    elif real.size and real.all():  # every entry a fold: the same as the indexed form below
        np.maximum(0, rows - stream[:-1], out=fill[1:])
        first, last = 0, real.size - 1
    else:
        idx = real.nonzero()[0]
        if idx.size == 0:
            return fill
        fill[idx[1:]] = np.maximum(0, rows - stream[idx[:-1]])
        first, last = idx[0], idx[-1]
    fill[first] += rows if dataflow == "ws" else 0
    fill[last] += rows + cols - 2
    return fill
