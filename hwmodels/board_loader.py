"""Board presets and the factory: YAML file (+ nested overrides) -> validated -> `Accelerator`.

The presets are data only, `hwmodels/boards/*.yaml`, each figure with its source. Overrides are
a nested dict merged into the YAML before validation (``{"pe_array": {"rows": 48},
"dataflow": "os"}``), so an override error names the key the same way as a file error (see
`hwmodels.board_schema`). The validated data becomes the frozen dataclasses of
`hwmodels.accelerator`; `hwmodels.resources` then checks that they fit the part.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping

import yaml

from .accelerator import (Accelerator, BoardResources, Buffer, Dram, EnergyTable, PEArray,
                          VectorUnit)
from .board_schema import AcceleratorSpec, BoardError, validate_board
from .dataflow import DataflowPlan
from .power import PowerCoefficients, fpga_energy_table
from .resources import ESTIMATED_GATHER_DERATING, GatherDerating
from .resources import check_fit as _check_fit

#: the folder of the board presets (package data)
BOARDS_DIR = Path(__file__).resolve().parent / "boards"


#: top-level keys whose mapping is one value (replaced by an override, not merged into)
VALUE_MAPPINGS = ("dataflow", "gather_derating")


def _deep_merge(base: dict, overrides: Mapping, label: str, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping) and not (path == "" and key in VALUE_MAPPINGS):
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
    spec = validate_board(data, label)
    b = spec.buffers
    plan = DataflowPlan.parse(spec.dataflow)
    return Accelerator(
        name=spec.name,
        clock_mhz=spec.clock_mhz,
        dataflow=plan.default,
        dataflow_overrides=plan.overrides,
        double_buffering=spec.double_buffering,
        sparse_strategy=spec.sparse_strategy,
        index_bytes=spec.index_bytes,
        weight_preload=spec.weight_preload,
        vector_overlap=spec.vector_overlap,
        pe_array=PEArray(**spec.pe_array.model_dump()),
        weight_buffer=Buffer(**b.weight.model_dump()),
        input_buffer=Buffer(**b.input.model_dump()),
        output_buffer=Buffer(**b.output.model_dump()),
        dram=Dram(**spec.dram.model_dump()),
        vector_unit=VectorUnit(**spec.vector_unit.model_dump()),
        energy=_energy_table(spec, label),
        board=BoardResources(**spec.board.model_dump()),
        source=label,
        index_format=spec.index_format,
        gather=spec.gather,
        gather_block_rows=spec.gather_block_rows,
        energy_model=spec.energy_model,
        power=_power(spec),
        gather_derating=_gather_derating(spec),
        mac_impl=spec.mac_impl,
    )


def _gather_derating(spec: AcceleratorSpec) -> GatherDerating | None:
    """`gather_derating:` as a value: None (off), the built-in estimate, or the given figures."""
    if spec.gather_derating == "off":
        return None
    if spec.gather_derating == "estimate":
        return ESTIMATED_GATHER_DERATING
    return GatherDerating(**spec.gather_derating.model_dump())


def _power(spec: AcceleratorSpec) -> PowerCoefficients | None:
    if spec.power is None:
        return None
    coeffs = spec.power.model_dump()
    return PowerCoefficients(**{k: float(v["value"]) for k, v in coeffs.items()},
                             sources=tuple((k, v["source"]) for k, v in coeffs.items()))


def _energy_table(spec: AcceleratorSpec, label: str) -> EnergyTable:
    """`energy:` as given (energy_model table) or derived from `power:` (fpga, hwmodels.power),
    where a figure given in `energy:` wins."""
    given = spec.energy.model_dump()
    if given["mac_pj"] is not None:
        given["mac_pj"] = _mac_pj(given["mac_pj"], spec.pe_array.precision, label)
    if spec.energy_model == "table":
        return EnergyTable(**given)
    b = spec.buffers
    return fpga_energy_table(
        _power(spec), precision=spec.pe_array.precision,
        vector=VectorUnit(**spec.vector_unit.model_dump()),
        buffer_memory={"weight": b.weight.memory, "input": b.input.memory,
                       "output": b.output.memory},
        dram_pj_per_byte=given.pop("dram_pj_per_byte"), given=given, mac_impl=spec.mac_impl)


def _mac_pj(mac_pj: float | dict[str, float], precision: str, label: str) -> float:
    """The MAC energy of the array's precision, from one figure or a per-precision table."""
    value = mac_pj.get(precision) if isinstance(mac_pj, dict) else mac_pj
    if value is None:
        raise BoardError(f"{label}: energy.mac_pj: no figure for precision {precision!r}; give "
                         f"one (have {', '.join(mac_pj)}) or a single number")
    if value < 0:
        raise BoardError(f"{label}: energy.mac_pj: {value} pJ is negative; give a figure >= 0")
    return float(value)


@functools.lru_cache(maxsize=64)
def _parsed(text: str, label: str) -> Any:
    """A board file's YAML, parsed once per content: a sweep loads the same preset for every
    accelerator choice (callers deep-copy the result; an edited file is parsed again)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise BoardError(f"{label}:{where}: not valid YAML ({getattr(err, 'problem', err)})") from None


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
    raw = copy.deepcopy(_parsed(path.read_text(), label))
    if not isinstance(raw, dict):
        raise BoardError(f"{label}: (top level): expected a mapping of keys, got {type(raw).__name__}")
    if overrides:
        raw = _deep_merge(raw, overrides, f"{label} (with overrides)")
        label = f"{label} (with overrides)"
    acc = accelerator_from_dict(raw, label)
    if check_fit:
        _check_fit(acc)
    return acc
