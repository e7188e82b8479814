"""FPGA power model: per-resource power coefficients -> a per-action price table, and power.

Accelergy style: the mapping counts actions (`hwmodels.actions.ActionCounts`), a replaceable
price table prices them (`hwmodels.energy.price`). With ``energy_model: fpga`` that table is not
typed in but DERIVED here from the part's power coefficients (board YAML ``power:``), each a
figure with its source:

* ``dsp_pj_per_cycle``: dynamic energy of one DSP48E2 for one clocked cycle of work
  (µW per MHz = pJ per cycle). A DSP holds ``hwmodels.resources.MACS_PER_DSP`` MACs: two at
  w8a8 (int8) and w4a8, so one MAC costs half of it; one at w8a16, w16a16 (int16), fp16. So
  w4a8 costs what w8a8 costs per MAC: the same DSP work per cycle (fewer toggling weight bits
  are not modelled: the coefficients are at default activity); its saving is in bytes.
* ``lut_pj_per_cycle``: CLB logic + signal (routing) energy per LUT and cycle of work; a PE
  has ``hwmodels.resources.LUT_PER_MAC`` LUTs, charged once per executed MAC.
* MACs built in LUTs (``mac_impl: lut``): no DSP share; the PE's LUTs are
  ``hwmodels.resources.luts_per_mac(precision, "lut")`` (control + LUT multiplier +
  accumulator), each charged ``lut_pj_per_cycle`` + ``clock_pj_per_lut_cycle`` per executed MAC
  (so the coefficients' default activity is assumed for the multiplier's LUTs too; a
  multiplier's glitching is not modelled).
* ``clock_pj_per_lut_cycle``: clock-tree energy per LUT (the proxy for the clocked sites a LUT
  comes with) and cycle of work; charged per executed MAC (PE LUTs) and per vector element
  pass (lane LUTs).
* ``bram36_pj_per_access`` / ``uram_pj_per_access``: one access of one 64-bit (8-byte) port.
* ``part_static_mw``: the programmable logic's static (leakage) power at ``junction_c``.

So `mac_pj` = DSP + PE logic + PE clock per MAC, buffer pJ/byte = memory access / 8 bytes,
`vector_pj` = (DSP + LUT logic + clock) of one lane per element, `static_mw` = part static.
Dynamic power is then "resource x coefficient x clock x activity", with the activity taken from
the action counts (executed MACs, bytes, element passes over the cycles they took).

Assumed (stated in docs/hardware.md "Energy and power"): a unit costs dynamic energy only in the
cycles it works: idle cycles (DRAM stalls, weight preload, fill/drain) cost static power only,
as with a clock enable / BUFGCE gating per unit. Ignored: the controller/DMA logic, the PS (ARM
cores), DRAM background and refresh power, board regulators; data-dependent switching (the
coefficients are at the source's default activity); the rise of leakage with junction
temperature (the static figure holds at ``junction_c`` only).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .accelerator import EnergyTable, VectorUnit
from .resources import MACS_PER_DSP, luts_per_mac

#: the coefficients of a board YAML's ``power:`` section, in order
COEFFICIENTS = ("part_static_mw", "junction_c", "dsp_pj_per_cycle", "lut_pj_per_cycle",
                "clock_pj_per_lut_cycle", "bram36_pj_per_access", "uram_pj_per_access")
#: bytes of one BRAM36 / URAM288 port access (64 data bits)
ACCESS_BYTES = 8


@dataclass(frozen=True)
class PowerCoefficients:
    """The part's power coefficients (units in the names) and where each figure comes from."""

    part_static_mw: float
    junction_c: float
    dsp_pj_per_cycle: float
    lut_pj_per_cycle: float
    clock_pj_per_lut_cycle: float
    bram36_pj_per_access: float
    uram_pj_per_access: float
    #: (coefficient, source) pairs, one per coefficient
    sources: tuple[tuple[str, str], ...] = ()

    def source(self, name: str) -> str:
        return dict(self.sources).get(name, "")


def mac_pj_parts(coeffs: PowerCoefficients, precision: str,
                 mac_impl: str = "dsp") -> dict[str, float]:
    """Energy of one executed MAC by resource: its share of a DSP (0 with `mac_impl` lut), the
    PE's LUT logic and signals, the PE's clock load (pJ)."""
    luts = luts_per_mac(precision, mac_impl)
    dsp = 0.0 if mac_impl == "lut" else coeffs.dsp_pj_per_cycle / MACS_PER_DSP[precision]
    return {"dsp": dsp,
            "logic": luts * coeffs.lut_pj_per_cycle,
            "clock": luts * coeffs.clock_pj_per_lut_cycle}


def vector_pj_per_element(coeffs: PowerCoefficients, vector: VectorUnit) -> float:
    """Energy of one element pass of the vector unit: one lane's DSPs, LUTs and clock for one
    cycle (pJ)."""
    return (vector.dsp_per_lane * coeffs.dsp_pj_per_cycle
            + vector.lut_per_lane * (coeffs.lut_pj_per_cycle + coeffs.clock_pj_per_lut_cycle))


def fpga_energy_table(coeffs: PowerCoefficients, *, precision: str, vector: VectorUnit,
                      buffer_memory: Mapping[str, str], dram_pj_per_byte: float,
                      given: Mapping[str, float] | None = None,
                      mac_impl: str = "dsp") -> EnergyTable:
    """The per-action price table a design on this part implies (module docstring).

    `buffer_memory` maps each buffer ("weight", "input", "output") to "bram" or "uram";
    `given` holds figures the board YAML or an override states explicitly (they win);
    `mac_impl` how the array's MACs are built (dsp, or lut: no DSP share, more LUTs)."""
    bram = coeffs.bram36_pj_per_access / ACCESS_BYTES
    uram = coeffs.uram_pj_per_access / ACCESS_BYTES
    derived = {
        "mac_pj": sum(mac_pj_parts(coeffs, precision, mac_impl).values()),
        "buffer_read_pj_per_byte": bram,
        "buffer_write_pj_per_byte": bram,
        "dram_pj_per_byte": dram_pj_per_byte,
        "vector_pj": vector_pj_per_element(coeffs, vector),
        "static_mw": coeffs.part_static_mw,
    }
    derived.update({k: float(v) for k, v in (given or {}).items() if v is not None})
    uram_buffers = tuple(b for b in ("weight", "input", "output") if buffer_memory[b] == "uram")
    return EnergyTable(**derived, uram_buffers=uram_buffers,
                       uram_read_pj_per_byte=uram, uram_write_pj_per_byte=uram)


def power_mw(energy_pj: Mapping[str, float], latency_ms: float) -> dict[str, float]:
    """Mean power per energy component over `latency_ms` (mW), plus ``dynamic`` (all but
    static), ``total``; pJ / ms = nW, so / 1e6 -> mW. Empty for a zero latency."""
    if latency_ms <= 0:
        return {}
    out = {k: v / latency_ms / 1e6 for k, v in energy_pj.items()}
    out["dynamic"] = sum(v for k, v in out.items() if k != "static")
    out["total"] = out["dynamic"] + out.get("static", 0.0)
    return out
