"""`Timing`: the cycles of one op, as both engines report them.

An engine only finds the total (the makespan of the fold sequence with its DRAM transfers); the
split is the same for both: the array's work (streaming, fill/drain, index overhead; a vector
op's passes) as the mapping scheduled it, and the rest of the total is stall (cycles the array
waits for memory).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Timing:
    total_cycles: float
    compute_cycles: float
    fill_drain_cycles: float
    index_overhead_cycles: float
    vector_cycles: float
    stall_cycles: float
    #: when each fold (over all instances) left the array, if the engine tracked it (the event
    #: engine does; the analytical engine's are derived in hwmodels.engines.fusion)
    fold_end_cycles: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def split(cls, kind: str, total_cycles: float, stream: np.ndarray, fill: np.ndarray,
              index: np.ndarray) -> Timing:
        """The timing of a fold sequence of `kind` ("gemm" or "vector") that took
        `total_cycles`, given its per-fold stream, fill/drain and index cycles."""
        work = float((stream + fill + index).astype(np.float64).sum())
        stall = total_cycles - work
        if kind == "vector":
            return cls(total_cycles, 0.0, 0.0, 0.0, work, stall)
        return cls(total_cycles, float(stream.sum()), float(fill.sum()), float(index.sum()), 0.0,
                   stall)

    @classmethod
    def of_sums(cls, kind: str, total_cycles: float,
                sums: tuple[float, float, float, float]) -> Timing:
        """`split` from the sums it takes of the arrays: (busy, stream, fill, index) cycles
        (`hwmodels.mapping.Schedule.work_sums`)."""
        work, stream, fill, index = sums
        stall = total_cycles - work
        if kind == "vector":
            return cls(total_cycles, 0.0, 0.0, 0.0, work, stall)
        return cls(total_cycles, stream, fill, index, 0.0, stall)

    def exposed(self, total_cycles: float) -> Timing:
        """A vector op's timing when only `total_cycles` of it show (the rest hidden behind its
        producer GEMM): vector cycles up to the op's own work, any excess is stall."""
        vector = min(total_cycles, self.vector_cycles)
        # (dataclasses.replace, spelled out: the same fields, without its per-field lookups)
        return Timing(total_cycles, self.compute_cycles, self.fill_drain_cycles,
                      self.index_overhead_cycles, vector, total_cycles - vector, None)
