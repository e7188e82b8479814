"""The study schema: a YAML description of a co-design sweep as pydantic models.

What is modelled: one study = one model (built-in name or checkpoint folder) at one sequence
length and batch, one or more GLUE tasks, a pruning method with its block shapes and compression
(or prune) ratios, the accuracy fidelity of each stage (a cheap one for every point, an expensive
one for the points promoted from on/near the Pareto front), an accelerator (a board preset of
hwmodels plus overrides, where a list means "sweep these"), the objectives and constraints, the
search (full grid, or NSGA-II with a trial budget) and the output folder.

Validators raise ValueError with one line; codesign.study.loading locates it in the YAML text.
A list item's error carries its index as an `@INDEX@ ` prefix that the loader moves into the key
path. What is ignored: nothing here reads files or builds accelerators (see
codesign.study.loading and codesign.study.hardware). No torch import (the CLI imports this).
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal, Union, get_args

from hwmodels import parse_dims
from hwmodels.accelerator import MacImpl, VectorOverlap, WeightPreload
from hwmodels.dataflow import DATAFLOWS as _HW_DATAFLOWS
from hwmodels.dataflow import DataflowPlan
from pydantic import Field, ValidationInfo, field_validator, model_validator

from codesign.accuracy.recipe import FIDELITIES, Recipe
# the pruning section and the shared validator pieces live in their own modules (re-exported)
from codesign.study.pruning_spec import (ALLOCATIONS, LATENCY_AWARE, UNIFORM,  # noqa: F401
                                         PruningSpec)
from codesign.study.validators import _as_list, _choices, _item_error, _items, _Strict

DATAFLOWS = _HW_DATAFLOWS  # single dataflows; a list item may also be a per-op plan
SPARSE_STRATEGIES = ("tile-skip", "compact")
# the per-operand precisions and their old aliases (hwmodels.accelerator.PRECISION_ALIASES)
PRECISIONS = ("w4a8", "w8a8", "w8a16", "w16a16", "int8", "int16", "fp16")
# accuracy.precision: measured at the accelerator's precision, unquantized, or one of PRECISIONS
ACCURACY_PRECISIONS = ("hardware", "fp32") + PRECISIONS
BUFFERS = ("weight", "input", "output")
WEIGHT_PRELOADS = get_args(WeightPreload)  # the hardware model's own choices
VECTOR_OVERLAPS = get_args(VectorOverlap)
MAC_IMPLS = get_args(MacImpl)  # how the array's MACs are built (hwmodels.resources)
#: the hardware keys that are unset unless a study names them: (allowed values, what they are)
_OPTIONAL_CHOICES = {"weight_preload": (WEIGHT_PRELOADS, "a weight preload"),
                     "vector_overlap": (VECTOR_OVERLAPS, "a vector overlap"),
                     "mac_impl": (MAC_IMPLS, "a MAC implementation")}
# Metrics a study may optimise; each stored per point in points.csv.
OBJECTIVE_METRICS = {
    "latency_ms": "min", "energy_mj": "min", "accuracy": "max", "sequences_per_s": "max",
    "accuracy_drop": "min", "utilization": "max", "dsp_fraction": "min", "bram_fraction": "min",
    "compression": "max",
}


class ModelSpec(_Strict):
    """The transformer: a built-in name or a Hugging Face checkpoint folder."""

    name: str = Field(description="built-in name (minilm-l6) or checkpoint folder")
    seq_len: int = Field(128, ge=1, le=8192)
    batch: int = Field(1, ge=1, le=4096)


class StageSpec(_Strict):
    """One accuracy stage: its fidelity, and (after the first) which points get promoted."""

    fidelity: Literal[FIDELITIES]  # type: ignore[valid-type]
    promote: Literal["all", "front", "near-front"] = "all"
    # near-front: points whose normalised objective distance to the front is <= tolerance
    tolerance: float = Field(0.05, ge=0.0, le=10.0)
    max_configs: int | None = Field(None, ge=1, description="at most this many (block, ratio)")


class AccuracySpec(_Strict):
    """How accuracy is measured: a recipe for codesign.accuracy and the fidelity stages."""

    measure: bool = True
    recipe: Union[str, dict[str, Any]] = "default"
    stages: list[StageSpec] = Field(default_factory=lambda: [StageSpec(fidelity="oneshot")],
                                    min_length=1)
    #: the precision a point's accuracy is measured at: "fp32" (the default: no quantization,
    #: as before precision was an axis; every record says fp32), "hardware" (the model
    #: fake-quantized at its accelerator's precision, codesign.accuracy.quantize), or one
    #: precision for every point (e.g. w8a8)
    precision: str = "fp32"
    #: measure every accuracy once per seed (the recipe's `seed` set to each in turn; None: once,
    #: at the recipe's seed, as before): a point's accuracy is then the mean over the seeds and
    #: its interval the envelope of theirs (codesign.sweep.seeds)
    seeds: list[int] | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"{v!r} is not a list of seeds; give distinct integers >= 0, "
                             "e.g. [0, 1, 2] (or drop the key: one measurement per point)")
        for i, x in _items(v):
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                raise _item_error(i, f"{x!r} is not a seed; allowed: an integer >= 0")
            if x in v[:i]:
                raise _item_error(i, f"seed {x} is listed twice; list each seed once")
        if info.data.get("measure") is False:
            raise ValueError("seeds repeat accuracy measurements, but accuracy.measure is "
                             "false: drop seeds or set measure: true")
        recipe = info.data.get("recipe")
        if isinstance(recipe, dict) and "seed" in recipe:
            raise ValueError(f"the recipe sets seed: {recipe['seed']!r}, and seeds sets one per "
                             "measurement: drop seed from the recipe (or drop seeds)")
        return [int(x) for x in v]

    @field_validator("precision", mode="before")
    @classmethod
    def _accuracy_precision(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            raise ValueError("one precision, not a list (sweep hardware.precision instead); "
                             f"allowed: {', '.join(ACCURACY_PRECISIONS)}")
        _choices(v, ACCURACY_PRECISIONS, "an accuracy precision",
                 lambda x: str(x).lower())
        return str(v).lower()

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: Any) -> Any:
        Recipe.from_spec(v)  # AccuracyError is a ValueError: reported with the recipe's line
        return v

    @model_validator(mode="after")
    def _first_all(self) -> "AccuracySpec":
        if self.stages[0].promote != "all":
            raise ValueError("the first stage evaluates every point: its 'promote' must be 'all'")
        order = [FIDELITIES.index(s.fidelity) for s in self.stages]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError("stages must go from cheap to expensive without repeats; allowed "
                             f"order: {', '.join(FIDELITIES)}")
        return self


class HardwareSpec(_Strict):
    """A board preset of hwmodels plus overrides; a list means "sweep these values"."""

    board: str
    pe_array: Union[str, list[str]] | None = None
    clock_mhz: Union[float, list[float]] | None = None
    # a dataflow, or a plan per op type (text "ws,attention=os" or a mapping {projections: ws,
    # attention: os}), or a list of them; kept as canonical text (hwmodels.dataflow)
    dataflow: Union[str, list[str]] = Field(default_factory=lambda: ["ws"])
    sparse_strategy: Union[str, list[str]] = Field(default_factory=lambda: ["tile-skip"])
    precision: Union[str, list[str]] | None = None
    double_buffering: Union[bool, list[bool]] | None = None
    buffers_kib: dict[str, Union[float, list[float]]] | None = None
    # pipeline (None: the board's value, and the key stays out of the point ids)
    weight_preload: Union[str, list[str]] | None = None
    vector_overlap: Union[str, list[str]] | None = None
    # dsp | lut (None: the board's, dsp; the key stays out of the point ids)
    mac_impl: Union[str, list[str]] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    engine: Literal["analytical", "event"] = "analytical"

    @field_validator("pe_array", mode="before")
    @classmethod
    def _arrays(cls, v: Any) -> Any:
        if v is None:
            return v
        out = []
        for i, item in _items(v):
            try:
                r, c = parse_dims(item, "PE array")
            except ValueError as exc:
                raise _item_error(i, str(exc))
            out.append(f"{r}x{c}")
        return out

    @field_validator("dataflow", mode="before")
    @classmethod
    def _dataflow(cls, v: Any) -> list[str]:
        """Each item parsed once into its canonical plan text ("ws", "ws,attention=os");
        items that mean the same plan are kept once."""
        out: list[str] = []
        for i, x in _items(v):
            try:
                plan = str(DataflowPlan.parse(x if isinstance(x, dict) else str(x)))
            except ValueError as exc:
                raise _item_error(i, str(exc))
            if plan not in out:
                out.append(plan)
        return out

    @field_validator("sparse_strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> list[str]:
        return _choices(v, SPARSE_STRATEGIES, "a sparse strategy",
                        lambda x: x.lower().replace("_", "-"))

    @field_validator("weight_preload", "vector_overlap", "mac_impl", mode="before")
    @classmethod
    def _optional_choice(cls, v: Any, info: ValidationInfo) -> Any:
        allowed, what = _OPTIONAL_CHOICES[info.field_name]
        return None if v is None else _choices(v, allowed, what, str.lower)

    @field_validator("clock_mhz", mode="before")
    @classmethod
    def _clock(cls, v: Any) -> Any:
        if v is None:
            return v
        for i, x in _items(v):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 1 <= x <= 2000:
                raise _item_error(i, f"clock {x!r} MHz out of range; allowed: a number from 1 "
                                  "to 2000")
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        if v is not None:
            _choices(v, PRECISIONS, "a precision")
        return v

    @field_validator("buffers_kib", mode="before")
    @classmethod
    def _buffers(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, dict):
            raise ValueError("give a mapping buffer name -> KiB (or a list of KiB to sweep), "
                             "e.g. {weight: [256, 512]}")
        for name, sizes in v.items():
            if name not in BUFFERS:
                raise ValueError(f"{name!r} is not a buffer; allowed: {', '.join(BUFFERS)}")
            for i, x in _items(sizes):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0:
                    raise ValueError(f"@{name}@ " + (f"@{i}@ " if i is not None else "")
                                     + f"{x!r} is not a size; allowed: a positive number of KiB")
        return v

    def swept(self) -> dict[str, list]:
        """Every hardware key with its list of values (scalars become one-element lists)."""
        keys: dict[str, list] = {}
        for key in ("pe_array", "clock_mhz", "dataflow", "sparse_strategy", "precision",
                    "double_buffering", "weight_preload", "vector_overlap", "mac_impl"):
            value = getattr(self, key)
            if value is not None:
                keys[key] = _as_list(value)
        for name, value in (self.buffers_kib or {}).items():
            keys[f"buffers_kib.{name}"] = _as_list(value)
        return keys

    def combinations(self) -> list[dict[str, Any]]:
        """The accelerator choices in a fixed order (the cartesian product of the lists)."""
        swept = self.swept()
        names = list(swept)
        return [dict(zip(names, combo)) for combo in itertools.product(*swept.values())]


class ObjectiveSpec(_Strict):
    metric: str
    direction: Literal["min", "max"]

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in OBJECTIVE_METRICS:
            raise ValueError(f"{v!r} is not a metric; allowed: {', '.join(OBJECTIVE_METRICS)}")
        return v


class ConstraintSpec(_Strict):
    """Feasibility: accuracy drop in points (100 x metric) and fitting the board's resources."""

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=100.0)
    fits_board: bool = True


class SearchSpec(_Strict):
    method: Literal["grid", "nsga2"] = "grid"
    trials: int | None = Field(None, ge=1, le=100000)
    population: int = Field(16, ge=2, le=10000)
    seed: int = 0

    @model_validator(mode="after")
    def _budget(self) -> "SearchSpec":
        if self.method == "nsga2" and self.trials is None:
            raise ValueError("nsga2 needs a trial budget: add 'trials: N'")
        return self


class Study(_Strict):
    """A validated study (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    question: str = ""
    model: ModelSpec
    tasks: list[str] = Field(min_length=1)
    glue_dir: str | None = None
    pruning: PruningSpec
    accuracy: AccuracySpec = Field(default_factory=AccuracySpec)
    hardware: HardwareSpec
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    constraints: ConstraintSpec = Field(default_factory=ConstraintSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    output: str | None = None
    storage: str | None = Field(None, description="optuna RDB URL; default: journal file")

    @model_validator(mode="before")
    @classmethod
    def _task_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "task" in data and "tasks" not in data:
            data = dict(data)
            data["tasks"] = _as_list(data.pop("task"))
        return data

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, v: Any) -> list[str]:
        from codesign.glue import TASKS, get_task  # no torch; a light module

        out = []
        for i, item in _items(v):
            try:
                out.append(get_task(str(item)).name)
            except ValueError:
                raise _item_error(i, f"{item!r} is not a GLUE task; allowed: "
                                  f"{', '.join(sorted(TASKS))}")
        return out

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        # accept the shorthand `- latency_ms: min`
        out = []
        for item in _as_list(v):
            if isinstance(item, dict) and len(item) == 1 and "metric" not in item:
                (metric, direction), = item.items()
                item = {"metric": metric, "direction": direction}
            if isinstance(item, dict) and isinstance(item.get("direction"), str):
                d = item["direction"].lower()
                item = {**item, "direction": {"minimize": "min", "maximize": "max"}.get(d, d)}
            out.append(item)
        return out

    @model_validator(mode="after")
    def _cross(self) -> "Study":
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError("an objective is listed twice")
        if not self.accuracy.measure and any(m.startswith("accuracy") for m in metrics):
            raise ValueError("accuracy.measure is false but an objective uses accuracy")
        if self.pruning.method == "rgl" and self.accuracy.stages[-1].fidelity != "rgl":
            raise ValueError("pruning.method rgl needs a last accuracy stage with fidelity rgl")
        first = self.accuracy.stages[0].fidelity if self.accuracy.stages else None
        if (self.pruning.method == "calibrated") != (first == "calibrated"):
            raise ValueError("pruning.method calibrated goes with a first accuracy stage of "
                             "fidelity calibrated: write both, or neither")
        rgl = [s.fidelity for s in self.accuracy.stages if s.fidelity == "rgl"]
        if self.pruning.balanced_points and rgl and self.accuracy.measure:
            raise ValueError("pruning.balanced: true cannot be measured at fidelity rgl (its "
                             "group-lasso pruning takes no PE balance): drop the rgl stage "
                             "(oneshot, calibrated and retrain take it) or set balanced: false")
        if self.pruning.latency_aware:
            if not self.accuracy.measure:
                raise ValueError("pruning.allocation latency-aware makes its masks in the "
                                 "calibrated accuracy measurement: set accuracy.measure: true")
            if self.search.method != "grid":
                raise ValueError("pruning.allocation latency-aware is swept by the grid only: "
                                 "set search.method: grid")
        return self

    # --- convenience -------------------------------------------------------------------------
    @property
    def objective_pairs(self) -> list[tuple[str, str]]:
        return [(o.metric, o.direction) for o in self.objectives]

    def output_dir(self, override: str | Path | None = None) -> Path:
        return Path(override or self.output or Path("results") / self.name)

    def to_plain(self) -> dict[str, Any]:
        """The validated study as plain data (for study.yaml and the report)."""
        data = self.model_dump(mode="json")
        data["objectives"] = [{"metric": o.metric, "direction": o.direction}
                              for o in self.objectives]
        data["constraints"] = self.constraints.model_dump(mode="json")
        if data["accuracy"].get("seeds") is None:  # a study without seeds: as before
            data["accuracy"].pop("seeds", None)
        return data


