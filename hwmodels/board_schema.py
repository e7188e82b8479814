"""The board YAML schema: pydantic models that validate a board description (or its overrides).

Every model forbids unknown keys (a misspelled key is an error, with the closest known key as a
hint) and `validate_board` reports the first problem as ONE line naming the file and the key
path, e.g. ``zcu102.yaml: pe_array.rows: Input should be greater than 0 (got -3)``. The factory
that turns a validated spec into an `hwmodels.Accelerator` is `hwmodels.board_loader`.
"""
from __future__ import annotations

import difflib
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .accelerator import (PRECISION_ALIASES, EnergyModel, Gather, MacImpl, Precision,
                          SparseStrategy, VectorOverlap, WeightPreload, precision_spec)
from .dataflow import DataflowPlan
from .sparsity import IndexFormat


class BoardError(ValueError):
    """A board YAML or an override is invalid; the message is one line naming file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PEArraySpec(_Strict):
    rows: int = Field(gt=0, le=1024)
    cols: int = Field(gt=0, le=1024)
    precision: Precision = "int8"


class BufferSpec(_Strict):
    capacity_bytes: int = Field(gt=0)
    memory: Literal["bram", "uram"] = "bram"


class BuffersSpec(_Strict):
    weight: BufferSpec
    input: BufferSpec
    output: BufferSpec


class DramSpec(_Strict):
    bandwidth_gb_s: float = Field(gt=0)
    peak_gb_s: float | None = Field(default=None, gt=0)


class VectorSpec(_Strict):
    lanes: int = Field(gt=0)
    dsp_per_lane: int = Field(default=2, ge=0)
    lut_per_lane: int = Field(default=600, ge=0)


class EnergySpec(_Strict):
    """Per-action figures. `energy_model: table` needs all of them; `fpga` needs only
    `dram_pj_per_byte` (the rest are derived from `power:`, and a figure given here wins)."""

    mac_pj: float | dict[Precision, float] | None = None
    buffer_read_pj_per_byte: float | None = Field(default=None, ge=0)
    buffer_write_pj_per_byte: float | None = Field(default=None, ge=0)
    dram_pj_per_byte: float = Field(ge=0)
    vector_pj: float | None = Field(default=None, ge=0)
    static_mw: float | None = Field(default=None, ge=0)

    @field_validator("mac_pj")
    @classmethod
    def _mac_pj_aliases(cls, v: Any) -> Any:
        """A per-precision table answers for a name and its alias alike (int8 <-> w8a8,
        int16 <-> w16a16); a name given explicitly wins over its alias's figure."""
        if not isinstance(v, dict):
            return v
        out = dict(v)
        for alias, name in PRECISION_ALIASES.items():
            if alias in v and name not in v:
                out[name] = v[alias]
            elif name in v and alias not in v:
                out[alias] = v[name]
        return out


class Coefficient(_Strict):
    """One power coefficient: its figure and where it comes from (a document, a measurement,
    or the word "estimate" and why)."""

    value: float = Field(ge=0)
    source: str = Field(min_length=8)


class PowerSpec(_Strict):
    """The part's power coefficients (hwmodels.power); every one is required."""

    part_static_mw: Coefficient
    junction_c: Coefficient
    dsp_pj_per_cycle: Coefficient
    lut_pj_per_cycle: Coefficient
    clock_pj_per_lut_cycle: Coefficient
    bram36_pj_per_access: Coefficient
    uram_pj_per_access: Coefficient


class GatherDeratingSpec(_Strict):
    """The crossbar gather's clock derating (hwmodels.resources.GatherDerating)."""

    ns_per_level: float = Field(ge=0)
    fan_in_per_level: int = Field(default=32, ge=2)
    source: str = Field(min_length=8)


class BoardSpec(_Strict):
    part: str
    dsp: int = Field(ge=0)
    bram36: int = Field(ge=0)
    uram: int = Field(ge=0)
    lut: int = Field(ge=0)


class AcceleratorSpec(_Strict):
    name: str
    description: str = ""
    clock_mhz: float = Field(gt=0, le=2000)
    #: one dataflow (ws, os) or a plan per op type, as text ("ws,attention=os") or a mapping
    #: ({projections: ws, attention: os}); kept in canonical text form (hwmodels.dataflow)
    dataflow: str | dict[str, str] = "ws"
    double_buffering: bool = True

    @field_validator("dataflow", mode="before")
    @classmethod
    def _dataflow_plan(cls, value: Any) -> str:
        return str(DataflowPlan.parse(value))  # a one-line ValueError naming the fix
    sparse_strategy: SparseStrategy = "tile-skip"
    index_bytes: int = Field(default=2, ge=1, le=8)
    index_format: str = "block"  # block | bitmap | nm | nm:M (hwmodels.sparsity.IndexFormat)

    @field_validator("index_format")
    @classmethod
    def _known_index_format(cls, value: str) -> str:
        IndexFormat.parse(value)  # a one-line ValueError naming the choices
        return value

    # pipeline (see hwmodels.mapping and hwmodels.engines.fusion)
    weight_preload: WeightPreload = "serial"
    vector_overlap: VectorOverlap = "none"
    # compaction's gather (see hwmodels.resources, docs/hardware.md "Compaction's gather")
    gather: Gather = "crossbar"
    gather_block_rows: int = Field(default=1, gt=0, le=1024)
    #: the crossbar's clock derating: off (default), "estimate" (the built-in figures,
    #: hwmodels.resources.ESTIMATED_GATHER_DERATING) or {ns_per_level, fan_in_per_level, source}
    gather_derating: Literal["off", "estimate"] | GatherDeratingSpec = "off"

    @field_validator("gather_derating", mode="before")
    @classmethod
    def _derating_off(cls, value: Any) -> Any:
        # YAML reads a bare `off` as False
        return "off" if value is None or value is False else value
    pe_array: PEArraySpec
    # how the array's MACs are built: dsp (DSP48E2) | lut (hwmodels.resources.LUT_MAC_LUTS)
    mac_impl: MacImpl = "dsp"
    buffers: BuffersSpec
    dram: DramSpec
    vector_unit: VectorSpec
    energy_model: EnergyModel = "table"
    energy: EnergySpec
    power: PowerSpec | None = None
    board: BoardSpec

    @model_validator(mode="after")
    def _lut_macs_are_integer(self) -> "AcceleratorSpec":
        if self.mac_impl == "lut" and precision_spec(self.pe_array.precision).floating:
            raise ValueError(f"mac_impl: lut has no LUT-MAC figure for {self.pe_array.precision}; "
                             "use mac_impl: dsp or an integer precision (w4a8, w8a8, ...)")
        return self


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for model in (AcceleratorSpec, PEArraySpec, BufferSpec, BuffersSpec, DramSpec,
                  VectorSpec, EnergySpec, BoardSpec, PowerSpec, Coefficient,
                  GatherDeratingSpec):
        keys |= set(model.model_fields)
    return keys


def _one_line(label: str, err: ValidationError) -> str:
    errors = err.errors()
    # a misspelled key also makes the right one "missing": report the misspelling
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    e = errors[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(e["loc"][-1]), sorted(_known_keys()), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown key ({hint}see hwmodels/boards/zcu102.yaml for the layout)"
    elif "input" in e and not isinstance(e["input"], (dict, list)):
        msg = f"{msg} (got {e['input']!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{label}: {loc}: {msg}{more}"


def validate_board(data: Mapping[str, Any], label: str = "<dict>") -> AcceleratorSpec:
    """Plain data in the YAML layout, validated; BoardError (one line, naming `label`) if not."""
    try:
        spec = AcceleratorSpec.model_validate(dict(data))
    except ValidationError as err:
        raise BoardError(_one_line(label, err)) from None
    _check_energy_model(spec, label)
    return spec


#: the energy: figures `energy_model: table` needs (fpga derives them)
TABLE_FIGURES = ("mac_pj", "buffer_read_pj_per_byte", "buffer_write_pj_per_byte", "vector_pj",
                 "static_mw")


def _check_energy_model(spec: AcceleratorSpec, label: str) -> None:
    """The sections the chosen energy model needs are there (one-line BoardError if not)."""
    if spec.energy_model == "fpga":
        if spec.power is None:
            raise BoardError(f"{label}: power: missing; energy_model: fpga needs the part's power "
                             "coefficients (see hwmodels/boards/zcu102.yaml) or set "
                             "energy_model: table")
        return
    for key in TABLE_FIGURES:
        if getattr(spec.energy, key) is None:
            raise BoardError(f"{label}: energy.{key}: missing; energy_model: table needs every "
                             "per-action figure (or set energy_model: fpga with a power: section)")
