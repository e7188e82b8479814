"""Board presets (the YAML files beside this module) and their loader.

A board YAML is validated by pydantic models (`extra="forbid"`, so a misspelled key is an error)
and every problem is reported as ONE line naming the file and the key path, e.g.
``zcu102.yaml: pe_array.rows: Input should be greater than 0 (got -3)``. Overrides are a nested
dict merged into the YAML before validation (``{"pe_array": {"rows": 48}, "dataflow": "os"}``),
so an override error names the key the same way. The validated data becomes the frozen
dataclasses of `hwmodels.accelerator`; `hwmodels.resources` then checks that they fit the part.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..accelerator import (Accelerator, BoardResources, Buffer, Dataflow, Dram, EnergyTable,
                           PEArray, Precision, SparseStrategy, VectorUnit)
from ..resources import check_fit as _check_fit

BOARDS_DIR = Path(__file__).resolve().parent


class BoardError(ValueError):
    """A board YAML or an override is invalid; the message is one line naming file and key."""


# --------------------------------------------------------------------------- pydantic schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PEArraySpec(_Strict):
    rows: int = Field(gt=0, le=1024)
    cols: int = Field(gt=0, le=1024)
    precision: Precision = "int8"


class _BufferSpec(_Strict):
    capacity_bytes: int = Field(gt=0)
    memory: Literal["bram", "uram"] = "bram"


class _BuffersSpec(_Strict):
    weight: _BufferSpec
    input: _BufferSpec
    output: _BufferSpec


class _DramSpec(_Strict):
    bandwidth_gb_s: float = Field(gt=0)
    peak_gb_s: float | None = Field(default=None, gt=0)


class _VectorSpec(_Strict):
    lanes: int = Field(gt=0)
    dsp_per_lane: int = Field(default=2, ge=0)
    lut_per_lane: int = Field(default=600, ge=0)


class _EnergySpec(_Strict):
    mac_pj: float | dict[Precision, float]
    buffer_read_pj_per_byte: float = Field(ge=0)
    buffer_write_pj_per_byte: float = Field(ge=0)
    dram_pj_per_byte: float = Field(ge=0)
    vector_pj: float = Field(ge=0)
    static_mw: float = Field(ge=0)


class _BoardSpec(_Strict):
    part: str
    dsp: int = Field(ge=0)
    bram36: int = Field(ge=0)
    uram: int = Field(ge=0)
    lut: int = Field(ge=0)


class _AcceleratorSpec(_Strict):
    name: str
    description: str = ""
    clock_mhz: float = Field(gt=0, le=2000)
    dataflow: Dataflow = "ws"
    double_buffering: bool = True
    sparse_strategy: SparseStrategy = "tile-skip"
    index_bytes: int = Field(default=2, ge=1, le=8)
    pe_array: _PEArraySpec
    buffers: _BuffersSpec
    dram: _DramSpec
    vector_unit: _VectorSpec
    energy: _EnergySpec
    board: _BoardSpec


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for model in (_AcceleratorSpec, _PEArraySpec, _BufferSpec, _BuffersSpec, _DramSpec,
                  _VectorSpec, _EnergySpec, _BoardSpec):
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


def _deep_merge(base: dict, overrides: Mapping, label: str, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            sub = out.get(key, {})
            if not isinstance(sub, dict):
                raise BoardError(f"{label}: override {where}: is not a section, give a value")
            out[key] = _deep_merge(sub, value, label, where + ".")
        else:
            out[key] = value
    return out


def list_boards() -> list[str]:
    """Names of the board presets shipped in hwmodels/boards/."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise BoardError(f"{p}: board file not found")
        return p
    preset = BOARDS_DIR / f"{name_or_path}.yaml"
    if not preset.is_file():
        raise BoardError(
            f"board {name_or_path!r}: no such preset (known: {', '.join(list_boards())}) "
            "and no such file"
        )
    return preset


def accelerator_from_dict(data: Mapping[str, Any], label: str = "<dict>") -> Accelerator:
    """Validate plain data (the YAML layout) into an Accelerator; errors are one line."""
    try:
        spec = _AcceleratorSpec.model_validate(dict(data))
    except ValidationError as err:
        raise BoardError(_one_line(label, err)) from None
    b = spec.buffers
    return Accelerator(
        name=spec.name,
        clock_mhz=spec.clock_mhz,
        dataflow=spec.dataflow,
        double_buffering=spec.double_buffering,
        sparse_strategy=spec.sparse_strategy,
        index_bytes=spec.index_bytes,
        pe_array=PEArray(**spec.pe_array.model_dump()),
        weight_buffer=Buffer(**b.weight.model_dump()),
        input_buffer=Buffer(**b.input.model_dump()),
        output_buffer=Buffer(**b.output.model_dump()),
        dram=Dram(**spec.dram.model_dump()),
        vector_unit=VectorUnit(**spec.vector_unit.model_dump()),
        energy=EnergyTable(**{**spec.energy.model_dump(),
                              "mac_pj": _mac_pj(spec.energy.mac_pj, spec.pe_array.precision,
                                                label)}),
        board=BoardResources(**spec.board.model_dump()),
        source=label,
    )


def _mac_pj(mac_pj: float | dict[str, float], precision: str, label: str) -> float:
    """The MAC energy of the array's precision, from one figure or a per-precision table."""
    value = mac_pj.get(precision) if isinstance(mac_pj, dict) else mac_pj
    if value is None:
        raise BoardError(f"{label}: energy.mac_pj: no figure for precision {precision!r}; give "
                         f"one (have {', '.join(mac_pj)}) or a single number")
    if value < 0:
        raise BoardError(f"{label}: energy.mac_pj: {value} pJ is negative; give a figure >= 0")
    return float(value)


def load_board(
    name_or_path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    check_fit: bool = True,
) -> Accelerator:
    """Load a preset (``"zcu102"``) or a YAML file, apply nested `overrides`, validate.

    With `check_fit` (default) a design that exceeds the board's DSP/BRAM36/URAM/LUT budget is
    rejected with `hwmodels.resources.ResourceError` (a ValueError) naming the resource and the
    numbers; pass ``check_fit=False`` to get the description anyway (a sweep that records
    ``fits=False`` does this; `simulate` always reports the resource fractions).
    """
    path = _resolve(name_or_path)
    label = path.name if path.parent == BOARDS_DIR else str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise BoardError(f"{label}:{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(raw, dict):
        raise BoardError(f"{label}: (top level): expected a mapping of keys, got {type(raw).__name__}")
    if overrides:
        raw = _deep_merge(raw, overrides, f"{label} (with overrides)")
        label = f"{label} (with overrides)"
    acc = accelerator_from_dict(raw, label)
    if check_fit:
        _check_fit(acc)
    return acc
