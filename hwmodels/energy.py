"""Energy: action counts (`hwmodels.actions.ActionCounts`) x EnergyTable -> pJ by component.

`price` is the one place where counts meet prices: MACs executed on the array (including the
zeros inside a kept tile under tile skipping; compaction executes only kept blocks) x `mac_pj`,
bytes written to and read from each on-chip buffer x the per-byte buffer figures, DRAM bytes
moved x `dram_pj_per_byte`, vector-unit element passes x `vector_pj`. Static power is charged
over the op's latency. Ignored: clock tree and interconnect beyond what the static figure covers,
data-dependent switching (a zero operand costs as much as any other), DRAM refresh/idle power.
The default figures are estimates (see the board YAML comments and docs/hardware.md).
"""
from __future__ import annotations

from .accelerator import EnergyTable
from .actions import BUFFERS, ActionCounts

COMPONENTS = ("mac", "weight_buffer", "input_buffer", "output_buffer", "dram", "vector", "static")


def price(counts: ActionCounts, table: EnergyTable, *, instances: int = 1,
          latency_us: float = 0.0) -> dict[str, float]:
    """Energy in pJ per component (`COMPONENTS`) of `instances` ops with these per-instance
    `counts`, plus static power over `latency_us` microseconds (all instances together)."""
    rd, wr = table.buffer_read_pj_per_byte, table.buffer_write_pj_per_byte
    dram_bytes = (counts.weight_dram_bytes + counts.index_dram_bytes + counts.input_dram_bytes
                  + counts.output_dram_bytes)
    per_instance = {
        "mac": counts.executed_macs * table.mac_pj,
        **{f"{b}_buffer": counts.buffer_bytes(b, "read") * rd + counts.buffer_bytes(b, "write") * wr
           for b in BUFFERS},
        "dram": dram_bytes * table.dram_pj_per_byte,
        "vector": counts.vector_element_passes * table.vector_pj,
    }
    out = {k: v * instances for k, v in per_instance.items()}
    # mW x microseconds = nJ; x 1e3 -> pJ
    out["static"] = table.static_mw * latency_us * 1e3
    return out
