"""A study's accelerator choices: typed values, resolved once into an hwmodels Accelerator.

What is modelled: an accelerator choice is one combination of the swept hardware keys of a study
(`hardware.pe_array`, `clock_mhz`, `dataflow`, `sparse_strategy`, `precision`,
`double_buffering`, `weight_preload`, `vector_overlap`, `mac_impl`, `buffers_kib.NAME`), held as
a frozen `AcceleratorChoice` (`dataflow` is the canonical text of one dataflow or of a plan per
op type, "ws,attention=os", as the schema parsed it: hwmodels.dataflow). It is resolved ONCE per
distinct choice (memoised per process) into the `hwmodels.load_board` overrides, the
`hwmodels.Accelerator` and hwmodels' resource check (`Fit`); the sweep's workers receive the
Accelerator itself and never read the board YAML again.

What is ignored: a board YAML file edited while a process runs (the memo keeps what was read).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwmodels import parse_dims

from codesign.study.schema import Study

# the swept keys in the study's order (buffers_kib.NAME follow, in the study's buffer order)
_KEYS = ("pe_array", "clock_mhz", "dataflow", "sparse_strategy", "precision", "double_buffering",
         "weight_preload", "vector_overlap", "mac_impl")
_BUFFER_PREFIX = "buffers_kib."


@dataclass(frozen=True)
class AcceleratorChoice:
    """One accelerator of a study: the swept hardware values, typed; None (or no buffer entry)
    means the key is not swept and the board's value holds."""

    pe_rows: int | None = None
    pe_cols: int | None = None
    clock_mhz: float | None = None
    dataflow: str | None = None
    sparse_strategy: str | None = None
    precision: str | None = None
    double_buffering: bool | None = None
    weight_preload: str | None = None
    vector_overlap: str | None = None
    mac_impl: str | None = None
    buffers_kib: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_study_values(cls, values: Mapping[str, Any]) -> AcceleratorChoice:
        """From study keys -> values (`pe_array` as validated "RxC" text or a (rows, cols)
        pair). The edge where text becomes typed values."""
        kw: dict[str, Any] = {}
        buffers = []
        for key, value in values.items():
            if key.startswith(_BUFFER_PREFIX):
                buffers.append((key[len(_BUFFER_PREFIX):], float(value)))
            elif key == "pe_array":
                rows, cols = value if isinstance(value, tuple) else parse_dims(value, "PE array")
                kw["pe_rows"], kw["pe_cols"] = int(rows), int(cols)
            elif key == "clock_mhz":
                kw[key] = float(value)
            elif key == "double_buffering":
                kw[key] = bool(value)
            elif key in _KEYS:
                kw[key] = str(value)
            else:
                raise KeyError(f"{key!r} is not a hardware key; allowed: "
                               f"{', '.join(_KEYS)}, {_BUFFER_PREFIX}NAME")
        return cls(**kw, buffers_kib=tuple(buffers))

    def study_values(self) -> dict[str, Any]:
        """Study key -> value of the swept keys, in the study's order (`pe_array` as "RxC")."""
        out: dict[str, Any] = {}
        if self.pe_rows is not None:
            out["pe_array"] = f"{self.pe_rows}x{self.pe_cols}"
        for key in _KEYS[1:]:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for name, kib in self.buffers_kib:
            out[_BUFFER_PREFIX + name] = kib
        return out

    def pairs(self) -> tuple[tuple[str, Any], ...]:
        """Sorted (study key, value) pairs: the hardware part of a point's identity (hashed)."""
        return tuple(sorted(self.study_values().items()))

    def with_strategy(self, sparse_strategy: str) -> AcceleratorChoice:
        return dataclasses.replace(self, sparse_strategy=sparse_strategy)


@dataclass(frozen=True)
class Fit:
    """hwmodels' resource check of one accelerator: fits or not, and its numbers."""

    fits: bool
    message: str
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ResolvedChoice:
    """An accelerator choice with its board overrides (read-only), Accelerator and fit."""

    choice: AcceleratorChoice
    overrides: dict[str, Any]
    accelerator: Any  # hwmodels.Accelerator
    fit: Fit


def accelerator_choices(study: Study) -> list[AcceleratorChoice]:
    """The study's accelerator choices in a fixed order (the cartesian product of its lists)."""
    return [AcceleratorChoice.from_study_values(c) for c in study.hardware.combinations()]


def board_overrides(study: Study, choice: AcceleratorChoice) -> dict[str, Any]:
    """The `hwmodels.load_board` overrides of one accelerator choice (study keys -> the board
    YAML layout: pe_array.rows/cols/precision, buffers.NAME.capacity_bytes, top-level keys)."""
    over = copy.deepcopy(study.hardware.overrides)
    for key, value in choice.study_values().items():
        if key.startswith(_BUFFER_PREFIX):
            name = key[len(_BUFFER_PREFIX):]
            over.setdefault("buffers", {}).setdefault(name, {})["capacity_bytes"] = \
                int(round(float(value) * 1024))
        elif key == "pe_array":
            over.setdefault("pe_array", {}).update({"rows": choice.pe_rows,
                                                    "cols": choice.pe_cols})
        elif key == "precision":
            over.setdefault("pe_array", {})["precision"] = value
        else:  # clock_mhz, dataflow, sparse_strategy, double_buffering, pipeline, mac_impl
            over[key] = value
    return over


def resolve(study: Study, choice: AcceleratorChoice) -> ResolvedChoice:
    """The overrides, Accelerator and fit of one choice, built once per distinct (board, fixed
    overrides, choice) in this process by hwmodels.load_board (errors are not memoised)."""
    fixed = json.dumps(study.hardware.overrides, sort_keys=True, default=str)
    key = (study.hardware.board, fixed, choice)
    hit = _MEMO.get(key)
    if hit is None:
        from hwmodels import load_board

        over = board_overrides(study, choice)
        acc = load_board(study.hardware.board, over, check_fit=False)
        hit = _MEMO[key] = ResolvedChoice(choice, over, acc, fit_of(acc))
    return hit


_MEMO: dict[tuple[str, str, AcceleratorChoice], ResolvedChoice] = {}


def fit_of(acc) -> Fit:
    """hwmodels' own resource check of `acc` (hwmodels.assess_fit) with its numbers."""
    import hwmodels

    check = hwmodels.assess_fit(acc)
    return Fit(bool(check.fits), check.message, check.as_dict())
