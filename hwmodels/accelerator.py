"""Accelerator description: frozen dataclasses (built from a board YAML by `hwmodels.board_loader`).

What is modelled: an R x C systolic PE array of MAC units at one precision per operand (weights,
activations: `PrecisionSpec`) and one clock, three
on-chip buffers (weights, inputs, outputs/partial sums) with a capacity and a memory kind
(BRAM36 or URAM288), a DRAM interface with a *sustained* bandwidth, a vector unit for the non-GEMM
work, an energy table and the board's resource budget. What is ignored: clock-domain crossings,
DRAM refresh/bank conflicts (folded into the sustained bandwidth), the host CPU.

"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .dataflow import Dataflow, DataflowPlan

#: per-operand precision: w<weight bits>a<activation bits> (integers) or fp16 (both operands);
#: int8 and int16 are the old names, kept as aliases of w8a8 and w16a16 (`PRECISION_ALIASES`)
Precision = Literal["w4a8", "w8a8", "w8a16", "w16a16", "fp16", "int8", "int16"]
SparseStrategy = Literal["dense", "tile-skip", "compact"]
#: serial: SCALE-Sim's counting (preload and skew per fold); overlapped: double-buffered PE
#: weights (ws) / accumulators (os), see hwmodels.mapping
WeightPreload = Literal["serial", "overlapped"]
#: none: vector ops run after their producer GEMM; fused: overlapped with it
#: (hwmodels.engines.fusion)
VectorOverlap = Literal["none", "fused"]
#: how compaction feeds each PE-column group its own gathered input stream (hwmodels.resources):
#: replicate: one input-buffer copy per group; crossbar: one widened buffer + a Benes network
Gather = Literal["replicate", "crossbar"]
#: how the PE array's MACs are built (hwmodels.resources): dsp = DSP48E2 slices (the default),
#: lut = multiplier and accumulator in LUTs (no DSP for the array)
MacImpl = Literal["dsp", "lut"]

#: table: the `energy:` figures as given; fpga: derived from the part's power coefficients
#: (hwmodels.power), `energy:` figures given explicitly win
EnergyModel = Literal["table", "fpga"]

#: the old single-width names -> the per-operand names they mean
PRECISION_ALIASES = {"int8": "w8a8", "int16": "w16a16"}


@dataclass(frozen=True)
class PrecisionSpec:
    """Bit widths of the two GEMM operands. `weight_bits` apply to a weight GEMM's W operand
    only; activations (X, outputs, both operands of the attention GEMMs, the vector unit's data)
    are `activation_bits` wide. Accumulators are 32 bits (int32 / fp32) for every precision."""

    name: str
    weight_bits: int
    activation_bits: int
    floating: bool = False

    @property
    def weight_bytes(self) -> int | float:
        """Bytes of one weight in buffers and DRAM (0.5 for 4 bits: two weights per byte)."""
        return _bytes(self.weight_bits)

    @property
    def activation_bytes(self) -> int | float:
        return _bytes(self.activation_bits)


def _bytes(bits: int) -> int | float:
    """bits / 8, an int when whole (so 8-bit operands keep the integer arithmetic of before)."""
    return bits // 8 if bits % 8 == 0 else bits / 8


#: the canonical precisions (the aliases resolve to these)
PRECISIONS = {p.name: p for p in (
    PrecisionSpec("w4a8", 4, 8), PrecisionSpec("w8a8", 8, 8), PrecisionSpec("w8a16", 8, 16),
    PrecisionSpec("w16a16", 16, 16), PrecisionSpec("fp16", 16, 16, floating=True))}


def canonical_precision(name: str) -> str:
    """The per-operand name of `name` (int8 -> w8a8, int16 -> w16a16); ValueError naming the
    known names when it is none of them."""
    name = PRECISION_ALIASES.get(name, name)
    if name not in PRECISIONS:
        known = ", ".join([*PRECISIONS, *PRECISION_ALIASES])
        raise ValueError(f"precision {name!r}: unknown; use one of {known}")
    return name


def precision_spec(name: str) -> PrecisionSpec:
    """The `PrecisionSpec` of a precision name or alias."""
    return PRECISIONS[canonical_precision(name)]


def by_precision(table: dict[str, Any]) -> dict[str, Any]:
    """`table` (canonical name -> value) with the aliases added, so that old and new names look
    up the same figure."""
    return {**table, **{alias: table[c] for alias, c in PRECISION_ALIASES.items() if c in table}}


#: bytes of one activation operand, of one weight and of one accumulator (partial sum)
OPERAND_BYTES = by_precision({n: p.activation_bytes for n, p in PRECISIONS.items()})
WEIGHT_BYTES = by_precision({n: p.weight_bytes for n, p in PRECISIONS.items()})
ACCUMULATOR_BYTES = by_precision({n: 4 for n in PRECISIONS})  # int32 / fp32 (48-bit DSP acc truncated)


# --------------------------------------------------------------------------- frozen values
@dataclass(frozen=True)
class PEArray:
    """R x C MAC units. rows map the reduction dim K (WS) or the output rows M (OS); cols map N."""

    rows: int
    cols: int
    precision: Precision = "int8"

    @property
    def macs(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Buffer:
    """One on-chip buffer. `capacity_bytes` is the physical total; with double buffering each half
    holds one tile, so the usable tile capacity is half of it (see `Accelerator.usable_bytes`)."""

    capacity_bytes: int
    memory: Literal["bram", "uram"] = "bram"


@dataclass(frozen=True)
class Dram:
    """Off-chip memory. `bandwidth_gb_s` is the SUSTAINED bandwidth the accelerator sees (GB/s,
    1e9 bytes/s); `peak_gb_s` is informational (interface width x transfer rate)."""

    bandwidth_gb_s: float
    peak_gb_s: float | None = None


@dataclass(frozen=True)
class VectorUnit:
    """Element-wise / reduction unit for softmax, LayerNorm, GELU and residual adds.
    `lanes` = elements per cycle for one pass; `dsp_per_lane`/`lut_per_lane` feed the resource
    estimate."""

    lanes: int
    dsp_per_lane: int = 2
    lut_per_lane: int = 600


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action (pJ) and static power (mW). Replaceable: every figure is a field.
    `mac_pj` is per MAC at the array's precision (a board YAML may give one figure per precision,
    `mac_pj: {int8: 0.3, int16: 0.9, fp16: 1.5}`, and the array's is picked when the accelerator
    is built, so overriding `pe_array.precision` also changes the MAC energy); buffer figures are
    per byte read/written;
    `vector_pj` is per element per pass of the vector unit."""

    mac_pj: float
    buffer_read_pj_per_byte: float
    buffer_write_pj_per_byte: float
    dram_pj_per_byte: float
    vector_pj: float
    static_mw: float
    #: buffers held in URAM288 (priced by the uram_* figures; energy_model fpga only) and those
    #: figures; the default (none) prices every buffer with the buffer_* figures above
    uram_buffers: tuple[str, ...] = ()
    uram_read_pj_per_byte: float = 0.0
    uram_write_pj_per_byte: float = 0.0

    def buffer_pj_per_byte(self, buffer: str, access: str) -> float:
        """pJ per byte read (`access="read"`) from or written to one buffer."""
        kind = "uram" if buffer in self.uram_buffers else "buffer"
        return getattr(self, f"{kind}_{access}_pj_per_byte")


@dataclass(frozen=True)
class BoardResources:
    """The FPGA part's budget."""

    part: str
    dsp: int
    bram36: int
    uram: int
    lut: int


@dataclass(frozen=True)
class Accelerator:
    """A complete accelerator design point (board preset + overrides)."""

    name: str
    clock_mhz: float
    #: the weight GEMMs' dataflow, and every GEMM's that `dataflow_overrides` does not name
    dataflow: Dataflow
    double_buffering: bool
    sparse_strategy: SparseStrategy
    index_bytes: int
    pe_array: PEArray
    weight_buffer: Buffer
    input_buffer: Buffer
    output_buffer: Buffer
    dram: Dram
    vector_unit: VectorUnit
    energy: EnergyTable
    board: BoardResources
    # pipeline (the code defaults reproduce SCALE-Sim's counting; the presets choose their own)
    weight_preload: WeightPreload = "serial"
    vector_overlap: VectorOverlap = "none"
    source: str = ""
    #: how compaction stores its indices: "block" | "bitmap" | "nm" | "nm:M"
    #: (see hwmodels.sparsity.IndexFormat)
    index_format: str = "block"
    #: compaction's gather (costed in hwmodels.resources; no effect unless sparse_strategy is
    #: compact): the hardware kind and the smallest block height in output features
    #: (BlockShape.rows, which map the PE columns) it supports, which sets the PE-column groups:
    #: ceil(cols / min(gather_block_rows, cols)); 1 = the worst case, one stream per column
    gather: Gather = "crossbar"
    gather_block_rows: int = 1
    #: how `energy` was made (see EnergyModel) and, for fpga, the part's power coefficients
    #: (a hwmodels.power.PowerCoefficients)
    energy_model: EnergyModel = "table"
    power: Any = None
    #: a dataflow per op type (hwmodels.dataflow.DataflowPlan.overrides, canonical); () = one
    #: dataflow for every GEMM, as before
    dataflow_overrides: tuple[tuple[str, Dataflow], ...] = ()
    #: the crossbar gather's clock derating (a hwmodels.resources.GatherDerating); None = off
    gather_derating: Any = None
    #: how the array's MACs are built (MacImpl; costed in hwmodels.resources, priced in
    #: hwmodels.power); dsp is the design as before
    mac_impl: MacImpl = "dsp"

    # derived figures --------------------------------------------------------------
    @property
    def dataflow_plan(self) -> DataflowPlan:
        """The dataflow of each GEMM (`dataflow` and `dataflow_overrides` as one value)."""
        return DataflowPlan(self.dataflow, self.dataflow_overrides)

    def dataflow_of(self, op: Any) -> Dataflow:
        """The dataflow GEMM `op` runs in (its role and kind decide, see hwmodels.dataflow)."""
        return self.dataflow if not self.dataflow_overrides else self.dataflow_plan.of(op)

    @property
    def operand_bytes(self) -> int | float:
        """Bytes of one activation (X, outputs, attention operands, vector data)."""
        return OPERAND_BYTES[self.pe_array.precision]

    @property
    def weight_bytes(self) -> int | float:
        """Bytes of one weight of a weight GEMM (0.5 at 4 bits)."""
        return WEIGHT_BYTES[self.pe_array.precision]

    def w_operand_bytes(self, kind: str) -> int | float:
        """Bytes of one element of a GEMM's W operand: a weight (`kind` "weight") or an
        activation (the attention GEMMs, `kind` "activation")."""
        return self.weight_bytes if kind == "weight" else self.operand_bytes

    @property
    def accumulator_bytes(self) -> int:
        return ACCUMULATOR_BYTES[self.pe_array.precision]

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Sustained DRAM bandwidth in bytes per accelerator clock cycle."""
        return self.dram_bytes_per_cycle_at(self.clock_mhz)

    def dram_bytes_per_cycle_at(self, clock_mhz: float) -> float:
        """Sustained DRAM bandwidth in bytes per cycle of a `clock_mhz` clock (a derated one:
        hwmodels.resources.gather_clock_mhz)."""
        return self.dram.bandwidth_gb_s * 1e9 / (clock_mhz * 1e6)

    def usable_bytes(self, buffer: Buffer) -> int:
        """Capacity one tile may occupy: half the buffer when double buffering is on."""
        return buffer.capacity_bytes // 2 if self.double_buffering else buffer.capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable), in the YAML's layout."""
        d = asdict(self)
        d["buffers"] = {
            "weight": d.pop("weight_buffer"),
            "input": d.pop("input_buffer"),
            "output": d.pop("output_buffer"),
        }
        for key in ("uram_buffers", "uram_read_pj_per_byte", "uram_write_pj_per_byte"):
            d["energy"].pop(key)  # derived from the buffers' memory kinds (energy_model fpga)
        d.pop("dataflow_overrides")  # the YAML layout: one `dataflow:` text (hwmodels.dataflow)
        d["dataflow"] = str(self.dataflow_plan)
        if self.gather_derating is None:
            d.pop("gather_derating")
        if self.power is None:
            d.pop("power")
        else:  # the YAML layout: coefficient -> {value, source}
            sources = dict(d["power"].pop("sources"))
            d["power"] = {k: {"value": v, "source": sources.get(k, "")}
                          for k, v in d["power"].items()}
        return d
