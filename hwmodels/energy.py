"""Energy: action counts x EnergyTable -> pJ by component.

Actions counted per op (by the mapping): MACs executed on the array (including the zeros inside a
kept tile under tile skipping; compaction executes only kept blocks), bytes written to and read
from each on-chip buffer, DRAM bytes moved, vector-unit element passes. Static power is charged
over the op's latency. Ignored: clock tree and interconnect beyond what the static figure covers,
data-dependent switching (a zero operand costs as much as any other), DRAM refresh/idle power.
The default figures are estimates (see the board YAML comments and the README).
"""
from __future__ import annotations

from .accelerator import Accelerator

COMPONENTS = ("mac", "weight_buffer", "input_buffer", "output_buffer", "dram", "vector", "static")


def op_energy_pj(totals: dict, count: int, total_cycles: float, acc: Accelerator) -> dict[str, float]:
    """Energy in pJ per component for `count` instances described by mapping `totals`."""
    e = acc.energy
    rd, wr = e.buffer_read_pj_per_byte, e.buffer_write_pj_per_byte
    dram = (totals["weight_bytes"] + totals["index_bytes"] + totals["input_bytes"]
            + totals["output_bytes"])
    out = {
        "mac": totals["executed_macs"] * e.mac_pj,
        "weight_buffer": totals["weight_read"] * rd + totals["weight_write"] * wr,
        "input_buffer": totals["input_read"] * rd + totals["input_write"] * wr,
        "output_buffer": totals["output_read"] * rd + totals["output_write"] * wr,
        "dram": dram * e.dram_pj_per_byte,
        "vector": totals.get("vector_element_passes", 0) * e.vector_pj,
    }
    out = {k: v * count for k, v in out.items()}
    # mW x microseconds = nJ; x 1e3 -> pJ
    out["static"] = e.static_mw * (total_cycles / acc.clock_mhz) * 1e3
    return out
