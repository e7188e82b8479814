"""FPGA resource estimate (DSP48E2, BRAM36, URAM288, LUT) and the fit check (`assess_fit`).

What is modelled (all figures are ESTIMATES, not synthesis results):
* DSP: a DSP48E2 packs two int8 MACs that share one operand (the 27x18 multiplier computes
  (a << 18 + b) x w, Xilinx WP486), so an int8 array needs ceil(R*C/2) DSPs; int16 needs one DSP
  per MAC; fp16 is costed at one DSP per MAC plus LUTs (a rough figure for a fused half-precision
  multiply-add). The vector unit adds `dsp_per_lane` per lane.
* BRAM36: 36 Kb = 4 KiB of data, at most 64 data bits (8 bytes) per port and cycle (512 x 72).
  A buffer needs max(ceil(capacity / 4 KiB), banks for its port width); the port width follows
  from the array (inputs: R operands per cycle, weights: C operands per cycle, partial sums:
  C accumulators per cycle); with double buffering each half needs its own banks.
  URAM288: 32 KiB, 64 data bits per port.
* LUT: per-MAC control/packing logic, a fixed controller/DMA/interconnect block and the vector
  unit's lanes. Ignored: routing congestion, timing closure, the PS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .accelerator import Accelerator, BoardResources, Buffer

BRAM36_BYTES = 4096
URAM_BYTES = 32768
PORT_BYTES = 8  # 64 data bits per BRAM36 / URAM288 port
#: LUTs per MAC for operand registers, packing correction and control (estimate)
LUT_PER_MAC = {"int8": 30, "int16": 25, "fp16": 250}
#: controller, AXI DMA and interconnect (estimate)
LUT_CONTROL = 20_000
#: index decoder / gather logic per PE column when compaction is used (estimate)
LUT_GATHER_PER_COL = 60


class ResourceError(ValueError):
    """The design does not fit the board; the message names the resource and the numbers."""


@dataclass(frozen=True)
class ResourceEstimate:
    dsp: int
    bram36: int
    uram: int
    lut: int

    def as_dict(self, acc: Accelerator) -> dict[str, dict[str, float]]:
        """resource -> {used, available, fraction} on `acc`'s board."""
        return self.usage(acc.board)

    def usage(self, board: BoardResources) -> dict[str, dict[str, float]]:
        """resource -> {used, available, fraction} on `board` (fraction inf: used, none there)."""
        out = {}
        for key, used in (("dsp", self.dsp), ("bram36", self.bram36), ("uram", self.uram),
                          ("lut", self.lut)):
            avail = getattr(board, key)
            frac = used / avail if avail else (0.0 if used == 0 else math.inf)
            out[key] = {"used": used, "available": avail, "fraction": frac}
        return out


@dataclass(frozen=True)
class FitCheck:
    """Whether a design fits its board: one problem per over-used resource, with its numbers
    (``"DSP needs 8,224 of 2,520 (326.3%) for the 128x128 int8 array ...; shrink ..."``), in the
    order dsp, bram36, uram, lut."""

    fits: bool
    problems: tuple[str, ...]
    estimate: ResourceEstimate
    board: BoardResources

    @property
    def message(self) -> str:
        """All problems in one line ("" when the design fits)."""
        return "; ".join(self.problems)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """resource -> {used, available, fraction} (as `ResourceEstimate.as_dict`)."""
        return self.estimate.usage(self.board)


def _memory_blocks(buf: Buffer, port_bytes: int, double: bool) -> tuple[int, int]:
    per_block = BRAM36_BYTES if buf.memory == "bram" else URAM_BYTES
    halves = 2 if double else 1
    width_blocks = halves * math.ceil(port_bytes / PORT_BYTES)
    n = max(math.ceil(buf.capacity_bytes / per_block), width_blocks)
    return (n, 0) if buf.memory == "bram" else (0, n)


def estimate(acc: Accelerator) -> ResourceEstimate:
    """Estimated DSP/BRAM36/URAM/LUT use of `acc` (see the module docstring)."""
    pe, vec = acc.pe_array, acc.vector_unit
    macs = pe.rows * pe.cols
    mac_dsp = math.ceil(macs / 2) if pe.precision == "int8" else macs
    dsp = mac_dsp + vec.lanes * vec.dsp_per_lane
    ob, ab = acc.operand_bytes, acc.accumulator_bytes
    bram = uram = 0
    for buf, port in ((acc.input_buffer, pe.rows * ob), (acc.weight_buffer, pe.cols * ob),
                      (acc.output_buffer, pe.cols * ab)):
        b, u = _memory_blocks(buf, port, acc.double_buffering)
        bram += b
        uram += u
    lut = macs * LUT_PER_MAC[pe.precision] + LUT_CONTROL + vec.lanes * vec.lut_per_lane
    if acc.sparse_strategy == "compact":
        lut += pe.cols * LUT_GATHER_PER_COL
    return ResourceEstimate(dsp=dsp, bram36=bram, uram=uram, lut=lut)


def _remedies(acc: Accelerator) -> dict[str, str]:
    """Per resource: what uses it in this design and how to use less of it."""
    pe = acc.pe_array
    return {
        "dsp": f"{pe.rows}x{pe.cols} {pe.precision} array"
        + (" (2 MACs/DSP48E2)" if pe.precision == "int8" else "")
        + f" + {acc.vector_unit.lanes}-lane vector unit; shrink pe_array or vector_unit.lanes",
        "bram36": "buffers (weight+input+output, banks for the port width); shrink "
        "buffers.*.capacity_bytes or move a buffer to uram",
        "uram": "buffers placed in uram; use memory: bram or shrink them",
        "lut": "array control + vector unit + controller (estimate); shrink the array",
    }


def assess_fit(acc: Accelerator) -> FitCheck:
    """The resource estimate of `acc` against its board, with one problem per over-used
    resource (see `FitCheck`); never raises."""
    est = estimate(acc)
    why = _remedies(acc)
    problems = []
    for key, row in est.usage(acc.board).items():
        if row["used"] > row["available"]:
            pct = 100.0 * row["used"] / row["available"] if row["available"] else math.inf
            problems.append(f"{key.upper()} needs {row['used']:,} of {row['available']:,} "
                            f"({pct:.1f}%) for the {why[key]}")
    return FitCheck(fits=not problems, problems=tuple(problems), estimate=est, board=acc.board)


def check_fit(acc: Accelerator) -> ResourceEstimate:
    """Raise ResourceError naming the first over-used resource and its numbers if `acc` does
    not fit its board; return the estimate otherwise."""
    fit = assess_fit(acc)
    if not fit.fits:
        raise ResourceError(f"{acc.source or acc.name}: design does not fit {acc.board.part}: "
                            f"{fit.problems[0]}")
    return fit.estimate
