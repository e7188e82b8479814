"""Energy: action counts (`hwmodels.actions.ActionCounts`) x EnergyTable -> pJ by component.

`price` is the one place where counts meet prices: MACs executed on the array (including the
zeros inside a kept tile under tile skipping; compaction executes only kept blocks) x `mac_pj`,
bytes written to and read from each on-chip buffer x the per-byte buffer figures, DRAM bytes
moved x `dram_pj_per_byte`, vector-unit element passes x `vector_pj`. Static power is charged
over the op's latency. Ignored: data-dependent switching (a zero operand costs as much as any
other), DRAM refresh/idle power.

Two ways to make the table (board YAML `energy_model`): `fpga` (the presets) derives it from the
part's power coefficients (`hwmodels.power`: DSP, LUT logic, clock tree and BRAM/URAM per action,
the part's static power); `table` takes the `energy:` figures as given. The table the presets
used before the FPGA model is `HOROWITZ_45NM` + a `static_mw` (docs/hardware.md).
"""
from __future__ import annotations

import functools

from .accelerator import EnergyTable, by_precision
from .actions import BUFFERS, ActionCounts

#: the per-action figures the presets used before the FPGA power model (issue 11): Horowitz,
#: ISSCC 2014, 45 nm, not scaled and not FPGA-calibrated (int8 mult 0.2 + int32 add 0.1 pJ;
#: int16 0.8 pJ = the 8-bit multiply scaled quadratically with width (estimate) + 0.1 pJ add;
#: fp16 mult 1.1 + add 0.4 pJ; 64-bit read of an 8 KB SRAM 10 pJ -> 1.25 pJ/byte, writes assumed
#: equal (estimate)). With `energy_model: table` and `static_mw` 3000 (zcu102) or 1500
#: (ultra96v2), both estimates, they give the pre-issue-11 energies exactly. The per-operand
#: names: w8a8 = int8, w16a16 = int16; w4a8 0.2 and w8a16 0.5 pJ scale the 8x8 multiply with the
#: product of the widths (0.1, 0.4 pJ) + the 0.1 pJ add (estimates).
HOROWITZ_45NM = {"mac_pj": by_precision({"w4a8": 0.2, "w8a8": 0.3, "w8a16": 0.5,
                                         "w16a16": 0.9, "fp16": 1.5}),
                 "buffer_read_pj_per_byte": 1.25, "buffer_write_pj_per_byte": 1.25,
                 "vector_pj": 1.5}

COMPONENTS = ("mac", "weight_buffer", "input_buffer", "output_buffer", "dram", "vector", "static")


def price(counts: ActionCounts, table: EnergyTable, *, instances: int = 1,
          latency_us: float = 0.0) -> dict[str, float]:
    """Energy in pJ per component (`COMPONENTS`) of `instances` ops with these per-instance
    `counts`, plus static power over `latency_us` microseconds (all instances together)."""
    (wr, ww), (ir, iw), (orr, ow) = _buffer_pj(table)
    c = counts
    dram_bytes = (c.weight_dram_bytes + c.index_dram_bytes + c.input_dram_bytes
                  + c.output_dram_bytes)
    out = {
        "mac": c.executed_macs * table.mac_pj * instances,
        "weight_buffer": (c.weight_buffer_read_bytes * wr
                          + c.weight_buffer_write_bytes * ww) * instances,
        "input_buffer": (c.input_buffer_read_bytes * ir + c.input_buffer_write_bytes * iw)
        * instances,
        "output_buffer": (c.output_buffer_read_bytes * orr
                          + c.output_buffer_write_bytes * ow) * instances,
        "dram": dram_bytes * table.dram_pj_per_byte * instances,
        "vector": c.vector_element_passes * table.vector_pj * instances,
    }
    # mW x microseconds = nJ; x 1e3 -> pJ
    out["static"] = table.static_mw * latency_us * 1e3
    return out


@functools.lru_cache(maxsize=256)
def _buffer_pj(table: EnergyTable) -> tuple[tuple[float, float], ...]:
    """(read, write) pJ per byte of each buffer of `BUFFERS`, in order (per table, memoised)."""
    return tuple((table.buffer_pj_per_byte(b, "read"), table.buffer_pj_per_byte(b, "write"))
                 for b in BUFFERS)
