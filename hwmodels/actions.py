"""Action counts: what one op makes the hardware do, counted by kind before anything is priced.

The mapping (`hwmodels.mapping`) builds one `ActionCounts` per schedule, once per dataflow
(weight stationary, output stationary, vector unit); `hwmodels.energy.price` turns counts into pJ
with a replaceable `EnergyTable`, as Accelergy separates action counts from the energy table.
Counts are per instance of an op; `counts * n` is n instances and `a + b` adds two ops.

What is counted: MACs the array executes (a zero inside a kept tile included), the MACs on kept
weights and on the dense matrix, element passes of the vector unit, DRAM bytes by operand, bytes
written to and read from each on-chip buffer, and the array's folds and weight tiles. Not counted:
control, clock tree and interconnect activity (the static power covers them).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from numbers import Integral

#: on-chip buffers, in the order their accesses are reported
BUFFERS = ("weight", "input", "output")


@dataclass(frozen=True)
class ActionCounts:
    """Actions of one op instance by kind; every field is additive."""

    executed_macs: int = 0  # MACs the array performs (zeros inside a kept tile included)
    useful_macs: int = 0  # MACs on kept (non-zero block) weights
    dense_macs: int = 0  # MACs of the dense GEMM
    vector_element_passes: int = 0  # elements x passes of the vector unit
    weight_dram_bytes: float = 0  # weights fetched from DRAM (indices excluded)
    index_dram_bytes: float = 0  # block indices fetched from DRAM (compaction)
    input_dram_bytes: float = 0  # inputs fetched from DRAM
    output_dram_bytes: float = 0  # outputs written to DRAM
    mandatory_dram_bytes: float = 0  # each kept weight, used input and output moved once
    weight_buffer_read_bytes: float = 0
    weight_buffer_write_bytes: float = 0
    input_buffer_read_bytes: float = 0
    input_buffer_write_bytes: float = 0
    output_buffer_read_bytes: float = 0  # partial-sum reads and the final read-out
    output_buffer_write_bytes: float = 0  # partial-sum writes
    folds: int = 0  # uses of the PE array (vector unit: chunks)
    tiles_total: int = 0  # weight tiles of the schedule (compaction: packed folds)
    tiles_skipped: int = 0  # weight tiles skipped because every block in them is pruned

    def __add__(self, other: ActionCounts) -> ActionCounts:
        if not isinstance(other, ActionCounts):
            return NotImplemented
        a, b = self.__dict__, other.__dict__
        return _with(self, {k: a[k] + b[k] for k in _FIELDS})

    def __mul__(self, instances: int) -> ActionCounts:
        """The counts of `instances` repetitions of the op."""
        if not isinstance(instances, Integral):
            return NotImplemented
        a = self.__dict__
        return _with(self, {k: a[k] * instances for k in _FIELDS})

    __rmul__ = __mul__

    @property
    def dram_bytes(self) -> float:
        """All DRAM traffic: weights, inputs, outputs and indices."""
        return (self.weight_dram_bytes + self.input_dram_bytes + self.output_dram_bytes
                + self.index_dram_bytes)

    def buffer_bytes(self, buffer: str, access: str) -> float:
        """Bytes read (`access="read"`) from or written (`"write"`) to one on-chip buffer."""
        return getattr(self, f"{buffer}_buffer_{access}_bytes")

    def buffer_accesses(self) -> dict[str, float]:
        """``{"weight_read": bytes, "weight_write": ..., "output_write": ...}`` (report keys)."""
        return {"weight_read": self.weight_buffer_read_bytes,
                "weight_write": self.weight_buffer_write_bytes,
                "input_read": self.input_buffer_read_bytes,
                "input_write": self.input_buffer_write_bytes,
                "output_read": self.output_buffer_read_bytes,
                "output_write": self.output_buffer_write_bytes}


#: the fields of ActionCounts, in order
_FIELDS = tuple(f.name for f in fields(ActionCounts))


def _with(like: ActionCounts, values: dict) -> ActionCounts:
    """An ActionCounts of `like`'s class holding `values` (every field; no __post_init__ to
    run, so this equals the dataclass constructor, without its per-field setattr cost)."""
    out = object.__new__(type(like))
    out.__dict__.update(values)
    return out
