"""FPGA resource estimate (DSP48E2, BRAM36, URAM288, LUT) and the fit check (`assess_fit`).

What is modelled (all figures are ESTIMATES, not synthesis results):
* DSP: ceil(R*C / `MACS_PER_DSP`) for the array (w8a8 = int8 and w4a8: two MACs per DSP48E2,
  w8a16, w16a16 = int16, fp16: one; the packing and its sources at `MACS_PER_DSP`); fp16 is
  costed at one DSP per MAC plus LUTs (a rough figure for a fused half-precision multiply-add).
  The vector unit adds `dsp_per_lane` per lane.
* BRAM36: 36 Kb = 4 KiB of data, at most 64 data bits (8 bytes) per port and cycle (512 x 72).
  A buffer needs max(ceil(capacity / 4 KiB), banks for its port width); the port width follows
  from the array (inputs: R activations per cycle, weights: C W operands per cycle at the wider
  of the weight and activation widths, since the attention GEMMs stream activations through the
  weight buffer; partial sums: C accumulators per cycle); with double buffering each half needs its own banks.
  URAM288: 32 KiB, 64 data bits per port.
* LUT: per-MAC control/packing logic, a fixed controller/DMA/interconnect block and the vector
  unit's lanes. Ignored: routing congestion, timing closure, the PS.
* MACs in LUTs (`Accelerator.mac_impl: lut`; default dsp): the array uses no DSP48E2; each MAC
  costs `LUT_MAC_LUTS` (a LUT multiplier of the weight by the activation bits, FINN-R's cost
  formula, plus a 32-bit accumulate adder) on top of its `LUT_PER_MAC` control logic. fp16 has
  no LUT figure (a ValueError). Ignored: the flip-flops of the pipelined multiplier, and that
  LUT MACs may not close timing at the DSP design's clock.
* Compaction's gather (`sparse_strategy: compact` only; see `gather_cost`): hwmodels.mapping gives
  each block column of a column tile its own PE-column group and gathered input stream; a block
  spans BlockShape.rows output features, which map the PE columns, so a design that supports
  blocks down to `gather_block_rows` output rows (a design parameter: the mask is not known to
  the estimate; 1 = the worst case, one stream per PE column) needs
  G = ceil(C / min(gather_block_rows, C)) streams of R operands per cycle.
  `replicate`: G copies of the input buffer (its BRAM36/URAM x G).
  `crossbar`: one input buffer widened to G x R operands per cycle (banks by the port rule above)
  and a Benes network over N = G x R lanes (2 log2 N - 1 stages of N/2 2x2 switches per data bit,
  one LUT6 per switch and bit: estimate). One group (blocks as tall as the array is wide) costs
  nothing beyond the dense input buffer. Bank conflicts of the crossbar are NOT modelled: the
  schedule is assumed conflict-free; the bound is a G x R-way conflict on one 8-byte bank word,
  i.e. up to ceil(G x R x operand bytes / 8) read cycles per streamed row instead of one.
* The crossbar's clock (optional, `gather_derating`; off by default): see `GatherDerating`.
  `gather_clock_mhz` is the clock a design runs at; `hwmodels.simulate` prices latency, DRAM
  bytes per cycle and static energy at it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .accelerator import (PRECISIONS, Accelerator, BoardResources, Buffer, by_precision,
                          precision_spec)

BRAM36_BYTES = 4096
URAM_BYTES = 32768
PORT_BYTES = 8  # 64 data bits per BRAM36 / URAM288 port
#: LUTs per MAC for operand registers, packing correction and control (estimate; w4a8 as w8a8:
#: the same two-MAC packing and correction, w8a16 as w16a16: one MAC per DSP)
LUT_PER_MAC = by_precision({"w4a8": 30, "w8a8": 30, "w8a16": 25, "w16a16": 25, "fp16": 250})
#: MACs one DSP48E2 (27x18 multiplier, 48-bit accumulator) performs per cycle, per precision:
#: w8a8: two MACs sharing one operand, (a1 << 18 + a2) x w (Xilinx WP486, "Deep Learning with
#: INT8 Optimization on Xilinx Devices"). w4a8: also two, (w1 << k + w2) x a with one shared
#: 8-bit activation: each product is 12 bits wide, so a third weight or activation does not fit
#: the 27- and 18-bit ports with the spacing exact packing needs (the bit-offset rule of Sommer
#: et al., "DSP-Packing: Squeezing Low-precision Arithmetic into FPGA DSP Blocks", FPL 2022,
#: arXiv 2203.11028; their four-per-DSP packing is for 4x4-bit products, and more than two 4x8
#: products per DSP needs their approximate "overpacking"). 16-bit activations fill the 18-bit
#: port: one MAC (w8a16, w16a16); fp16: one DSP per MAC plus LUTs (estimate, as before).
MACS_PER_DSP = by_precision({"w4a8": 2, "w8a8": 2, "w8a16": 1, "w16a16": 1, "fp16": 1})
#: how the array's MACs may be built (hwmodels.accelerator.MacImpl)
MAC_IMPLS = ("dsp", "lut")
#: accumulator bits of a LUT-built MAC: the model's 32-bit accumulators (ACCUMULATOR_BYTES);
#: an adder takes one LUT6 per bit feeding the CARRY8 chain (UltraScale+ CLB, Xilinx UG574)
LUT_ACCUMULATOR_BITS = 32


def lut_multiplier_luts(weight_bits: int, activation_bits: int) -> int:
    """LUTs of one W x A-bit integer multiplier built in LUTs: (2 ceil((W+A)/6) - 1) (W+A), the
    LUT cost model of FINN-R (Blott et al., "FINN-R: An End-to-End Deep-Learning Framework for
    Fast Exploration of Quantized Neural Networks", ACM TRETS 2018), as Xilinx FINN's
    MVAU.lut_estimation uses it (src/finn/custom_op/fpgadataflow/matrixvectoractivation.py).
    8x8: 80 LUTs; the exact 8x8 unsigned multiplier synthesised in ApproxFPGAs (Prabakaran et
    al., DAC 2020; circuit mul8u_1JD3) takes 74."""
    width = weight_bits + activation_bits
    return (2 * math.ceil(width / 6) - 1) * width


#: LUTs of one LUT-built MAC beyond its control logic (LUT_PER_MAC): the multiplier plus the
#: accumulate adder. w4a8 36 + 32, w8a8 80 + 32, w8a16 168 + 32, w16a16 352 + 32; no fp16
LUT_MAC_LUTS = by_precision({
    name: lut_multiplier_luts(spec.weight_bits, spec.activation_bits) + LUT_ACCUMULATOR_BITS
    for name, spec in PRECISIONS.items() if not spec.floating})


def luts_per_mac(precision: str, mac_impl: str = "dsp") -> int:
    """LUTs of one PE at `precision`: its control logic (LUT_PER_MAC), plus the multiplier and
    accumulator when the MACs are built in LUTs; a one-line ValueError for an unknown
    implementation or a precision without a LUT figure (fp16)."""
    if mac_impl not in MAC_IMPLS:
        raise ValueError(f"mac_impl {mac_impl!r}: unknown; use one of {', '.join(MAC_IMPLS)}")
    if mac_impl == "dsp":
        return LUT_PER_MAC[precision]
    if precision not in LUT_MAC_LUTS:
        raise ValueError(f"mac_impl lut: no LUT-MAC figure for precision {precision!r}; use "
                         f"mac_impl: dsp or one of {', '.join(PRECISIONS_WITH_LUT_MACS)}")
    return LUT_PER_MAC[precision] + LUT_MAC_LUTS[precision]


#: the canonical precisions a LUT-built MAC is costed for
PRECISIONS_WITH_LUT_MACS = tuple(n for n in PRECISIONS if n in LUT_MAC_LUTS)


def array_dsp(acc: Accelerator) -> int:
    """DSP48E2 of the PE array: ceil(R*C / MACS_PER_DSP), 0 when the MACs are in LUTs."""
    if acc.mac_impl == "lut":
        return 0
    return math.ceil(acc.pe_array.macs / MACS_PER_DSP[acc.pe_array.precision])


def array_lut(acc: Accelerator) -> int:
    """LUTs of the PE array: R*C x `luts_per_mac` (ValueError as there)."""
    return acc.pe_array.macs * luts_per_mac(acc.pe_array.precision, acc.mac_impl)
#: controller, AXI DMA and interconnect (estimate)
LUT_CONTROL = 20_000
#: index decoder / gather logic per PE column when compaction is used (estimate)
LUT_GATHER_PER_COL = 60
#: LUT6 per 2x2 switch and data bit of the crossbar's Benes network (estimate: the two 2:1 muxes
#: share their three inputs, so one dual-output LUT6_2 holds both)
LUT_PER_SWITCH_BIT = 1


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


@dataclass(frozen=True)
class GatherCost:
    """What compaction's gather adds to a design (zero unless `sparse_strategy` is compact)."""

    groups: int  # PE-column groups with their own input stream
    bram36: int  # extra BRAM36 beyond the dense input buffer
    uram: int  # extra URAM288 beyond the dense input buffer
    lut: int  # crossbar LUTs (the per-column index decoder is counted apart, as before)


def gather_groups(acc: Accelerator) -> int:
    """PE-column groups that need their own gathered input stream under compaction:
    ceil(cols / min(gather_block_rows, cols)) (mapping: one group per block column of a column
    tile); 0 when the design does not compact."""
    if acc.sparse_strategy != "compact":
        return 0
    cols = acc.pe_array.cols
    return math.ceil(cols / min(acc.gather_block_rows, cols))


def benes_switches(lanes: int) -> int:
    """2x2 switches of a Benes network over `lanes` inputs (rounded up to a power of two N):
    (N / 2) x (2 log2 N - 1) (Benes 1964); 0 for one lane."""
    if lanes <= 1:
        return 0
    n = 1 << (lanes - 1).bit_length()
    return n // 2 * (2 * n.bit_length() - 3)  # bit_length - 1 = log2 N


def gather_cost(acc: Accelerator) -> GatherCost:
    """The extra input-buffer memory and crossbar LUTs of compaction's gather (module docstring).
    Models G independent R-operand streams; ignores bank conflicts (see the docstring's bound)
    and the gather's pipeline registers; the clock penalty of a wide crossbar is
    `gather_clock_mhz` (optional)."""
    groups = gather_groups(acc)
    if groups <= 1:  # one stream reads the input buffer as the dense design does
        return GatherCost(groups=groups, bram36=0, uram=0, lut=0)
    rows, ob = acc.pe_array.rows, acc.operand_bytes
    base = _memory_blocks(acc.input_buffer, rows * ob, acc.double_buffering)
    if acc.gather == "replicate":
        return GatherCost(groups=groups, bram36=base[0] * (groups - 1),
                          uram=base[1] * (groups - 1), lut=0)
    wide = _memory_blocks(acc.input_buffer, groups * rows * ob, acc.double_buffering)
    lut = benes_switches(groups * rows) * 8 * ob * LUT_PER_SWITCH_BIT
    return GatherCost(groups=groups, bram36=wide[0] - base[0], uram=wide[1] - base[1], lut=lut)


@dataclass(frozen=True)
class GatherDerating:
    """The achievable clock of a design whose compaction gather is a crossbar, as a function of
    the crossbar's mux fan-in N = G x R (each of the G x R operand lanes it feeds may take any
    of the G x R lanes of the widened input-buffer word; see `gather_cost`).

    Model: the shallowest N:1 selection on the fabric is a tree of CLB-level muxes of
    `fan_in_per_level` inputs each (UltraScale/UltraScale+: eight LUT6 with MUXF7/F8/F9 make a
    32:1 mux within one CLB, UG974 "MUXF9"), so it has L(N) = ceil(log2 N / log2 f) levels
    (f = fan_in_per_level). The design's `clock_mhz` is taken to close timing with one level;
    each further level adds `ns_per_level` to the critical path:
    ``f(N) = 1000 / (1000 / clock_mhz + (L(N) - 1) x ns_per_level)`` MHz (= clock_mhz up to
    N = f). `source` says where `ns_per_level` comes from (a figure or "estimate: ...").

    Ignored: placement and the select lines' fan-out (wide crossbars spread over many CLBs;
    both make the real path longer), pipelining the network (which would cost latency cycles
    instead of clock), the Benes network's own depth (2 log2 N - 1 switch stages, deeper than
    the mux tree unless registered every few stages)."""

    ns_per_level: float
    fan_in_per_level: int = 32
    source: str = ""

    def __post_init__(self) -> None:
        if not self.ns_per_level >= 0 or self.fan_in_per_level < 2:
            raise ValueError(f"gather_derating: ns_per_level {self.ns_per_level} must be >= 0 "
                             f"and fan_in_per_level {self.fan_in_per_level} >= 2")

    def levels(self, fan_in: int) -> int:
        """Mux levels of an N:1 selection, the least L with f^L >= N (N = `fan_in`); 0 for
        one input."""
        levels, reach = 0, 1
        while reach < fan_in:
            reach *= self.fan_in_per_level
            levels += 1
        return levels

    def clock_mhz(self, clock_mhz: float, fan_in: int) -> float:
        """The achievable clock of a `clock_mhz` design with a crossbar of mux fan-in N."""
        extra = max(0, self.levels(fan_in) - 1)
        if extra == 0 or self.ns_per_level == 0:
            return clock_mhz
        return 1000.0 / (1000.0 / clock_mhz + extra * self.ns_per_level)


#: the built-in derating (board YAML ``gather_derating: estimate``): 0.5 ns per mux level is an
#: ESTIMATE (one LUT6 + MUXF7/F8/F9 and one local route on a -2 UltraScale+; the data sheet,
#: DS925, publishes no CLB delays); 32 inputs per level from UG974 (MUXF9: a 32:1 mux per CLB)
ESTIMATED_GATHER_DERATING = GatherDerating(
    ns_per_level=0.5, fan_in_per_level=32,
    source="estimate: 0.5 ns per CLB mux level (LUT6 + MUXF7/F8/F9 + a local route, -2 "
           "UltraScale+; DS925 lists no CLB delays); 32:1 per CLB from UG974 MUXF9")


def crossbar_fan_in(acc: Accelerator) -> int:
    """The mux fan-in G x R of compaction's crossbar gather; 0 when there is none (no
    compaction, a replicated gather, or one PE-column group)."""
    groups = gather_groups(acc)
    if acc.gather != "crossbar" or groups <= 1:
        return 0
    return groups * acc.pe_array.rows


def gather_clock_mhz(acc: Accelerator) -> float:
    """The clock `acc` runs at: its `clock_mhz`, lowered by `gather_derating` (if set) when
    compaction gathers through a crossbar (`GatherDerating`); exactly `clock_mhz` otherwise."""
    fan_in = crossbar_fan_in(acc)
    if acc.gather_derating is None or fan_in == 0:
        return acc.clock_mhz
    return acc.gather_derating.clock_mhz(acc.clock_mhz, fan_in)


def estimate(acc: Accelerator) -> ResourceEstimate:
    """Estimated DSP/BRAM36/URAM/LUT use of `acc` (see the module docstring)."""
    pe, vec = acc.pe_array, acc.vector_unit
    dsp = array_dsp(acc) + vec.lanes * vec.dsp_per_lane
    ob, ab = acc.operand_bytes, acc.accumulator_bytes
    wport = pe.cols * max(acc.weight_bytes, ob)
    bram = uram = 0
    for buf, port in ((acc.input_buffer, pe.rows * ob), (acc.weight_buffer, wport),
                      (acc.output_buffer, pe.cols * ab)):
        b, u = _memory_blocks(buf, port, acc.double_buffering)
        bram += b
        uram += u
    lut = array_lut(acc) + LUT_CONTROL + vec.lanes * vec.lut_per_lane
    if acc.sparse_strategy == "compact":
        lut += pe.cols * LUT_GATHER_PER_COL
        g = gather_cost(acc)
        bram, uram, lut = bram + g.bram36, uram + g.uram, lut + g.lut
    return ResourceEstimate(dsp=dsp, bram36=bram, uram=uram, lut=lut)


@dataclass(frozen=True)
class PrecisionCost:
    """What the array's precision costs: bits and bytes per operand, MACs per DSP48E2, the
    array's DSPs and PE LUTs (the energy per MAC is the accelerator's `energy.mac_pj`), and
    how the MACs are built (`mac_impl`: with lut, `array_dsp` is 0 and `array_lut` holds the
    LUT multipliers and accumulators)."""

    precision: str
    weight_bits: int
    activation_bits: int
    weight_bytes: float
    activation_bytes: float
    macs_per_dsp: int
    array_dsp: int
    array_lut: int
    mac_impl: str = "dsp"

    def line(self) -> str:
        """One line for a report: ``w4a8: weights 4 bit (0.5 B), activations 8 bit (1 B), ...``."""
        built = (f"{self.macs_per_dsp} MAC/DSP48E2" if self.mac_impl == "dsp"
                 else "MACs in LUTs")
        return (f"{self.precision}: weights {self.weight_bits} bit ({self.weight_bytes:g} B), "
                f"activations {self.activation_bits} bit ({self.activation_bytes:g} B), "
                f"{built} -> array {self.array_dsp:,} DSP, {self.array_lut:,} LUT")


def precision_cost(acc: Accelerator) -> PrecisionCost:
    """The array's precision and what it costs (see `PrecisionCost`)."""
    pe = acc.pe_array
    spec = precision_spec(pe.precision)
    return PrecisionCost(
        precision=pe.precision, weight_bits=spec.weight_bits,
        activation_bits=spec.activation_bits, weight_bytes=acc.weight_bytes,
        activation_bytes=acc.operand_bytes, macs_per_dsp=MACS_PER_DSP[pe.precision],
        array_dsp=array_dsp(acc), array_lut=array_lut(acc), mac_impl=acc.mac_impl)


def _remedies(acc: Accelerator) -> dict[str, str]:
    """Per resource: what uses it in this design and how to use less of it."""
    pe = acc.pe_array
    g = gather_cost(acc)
    gather = "" if g.groups == 0 else (
        f" + compaction's {acc.gather} gather for {g.groups} PE-column groups "
        f"(+{g.bram36:,} BRAM36, +{g.uram:,} URAM, +{g.lut:,} LUT; raise gather_block_rows, "
        f"try gather: {'crossbar' if acc.gather == 'replicate' else 'replicate'} or use tile-skip)")
    lut_macs = acc.mac_impl == "lut"
    return {
        "dsp": (f"{acc.vector_unit.lanes}-lane vector unit (the array's MACs are in LUTs); "
                "shrink vector_unit.lanes") if lut_macs else
        f"{pe.rows}x{pe.cols} {pe.precision} array"
        + (f" ({MACS_PER_DSP[pe.precision]} MACs/DSP48E2)" if MACS_PER_DSP[pe.precision] > 1
           else "")
        + f" + {acc.vector_unit.lanes}-lane vector unit; shrink pe_array or vector_unit.lanes"
        + ("" if MACS_PER_DSP[pe.precision] > 1 else
           " or use a precision with 8-bit activations (w8a8, w4a8: 2 MACs/DSP48E2)"),
        "bram36": "buffers (weight+input+output, banks for the port width); shrink "
        "buffers.*.capacity_bytes or move a buffer to uram" + gather,
        "uram": "buffers placed in uram; use memory: bram or shrink them" + gather,
        "lut": (f"{pe.rows}x{pe.cols} {pe.precision} array with its MACs in LUTs "
                f"({luts_per_mac(pe.precision, 'lut')} LUT per MAC) + vector unit + controller "
                "(estimate); shrink the array or use mac_impl: dsp" if lut_macs else
                "array control + vector unit + controller (estimate); shrink the array")
        + gather,
    }


def assess_fit(acc: Accelerator) -> FitCheck:
    """The resource estimate of `acc` against its board, with one problem per over-used
    resource (see `FitCheck`); raises only for a design it cannot cost (a ValueError:
    fp16 with mac_impl lut)."""
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
