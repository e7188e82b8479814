"""The design space of a study and the identity of its design points.

What is modelled: a design point is (task, block shape or None for the dense baseline, prune
ratio, one accelerator choice), or, for a latency-aware point (`pruning.allocation`), (task,
block shape, speedup target, one accelerator choice): its masks are allocated on that
accelerator, so its accuracy is its own. A PE-balanced point (`pruning.balanced`) is a uniform
point (ratio above 0) whose masks are balanced over its accelerator's PE columns: its accuracy
is shared by the accelerators of the same array width only. The grid is enumerated
deterministically (per task: the dense baseline of each accelerator, then block shapes x ratios
x balance choices x accelerators, then block shapes x speedup targets x accelerators) and every
point is keyed by `point_id`, a hash of its parameters (block shape as its text "16x16" or
"dense", the ratio rounded to 6 digits, the hardware as sorted (study key, value) pairs; a
latency-aware point: allocation and target in place of the ratio; a balanced point: also
`balanced: true`) and of the study's evaluation context (model, sequence length, batch, board,
fixed overrides, engine, method, accuracy recipe). The hashed content is a storage contract:
stored studies resume by these ids, and unbalanced uniform points keep theirs when a study adds
latency-aware or balanced ones.

What is ignored: nothing is evaluated here; optuna sees the space as categorical distributions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from hwmodels import BlockShape

from codesign.hashing import short_hash
from codesign.study import AcceleratorChoice, Study, accelerator_choices
from codesign.study.schema import LATENCY_AWARE, UNIFORM

DENSE = "dense"
#: the accuracy_key tag (and promotion config suffix) of a PE-balanced point
BALANCED = "balanced"
#: the points.csv columns that label a point's allocation (only in studies with latency-aware
#: points: a uniform-only study's table is as before)
ALLOCATION_COLUMNS = ("allocation", "speedup_target")
# hardware keys of the study file -> column names of points.csv
HW_COLUMNS = {"pe_array": "array"}


def hw_column(key: str) -> str:
    """The points.csv column of a study hardware key (`buffers_kib.weight` ->
    `buffer_weight_kib`, `pe_array` -> `array`)."""
    if key.startswith("buffers_kib."):
        return f"buffer_{key.split('.', 1)[1]}_kib"
    return HW_COLUMNS.get(key, key)


def is_balanced(value: Any) -> bool:
    """Whether a stored `balanced` value (a JSON bool, numpy bool, CSV text, NaN or None when
    the column is absent) says true."""
    return str(value).strip().lower() in ("true", "1", "1.0")


def context_of(study: Study) -> dict[str, Any]:
    """Everything besides a point's own parameters that changes its results (the accuracy
    precision only when it is not fp32, the accuracy seeds only when the study lists them, so
    fp32 studies without seeds keep their stores)."""
    context = {"model": study.model.name, "seq_len": study.model.seq_len,
               "batch": study.model.batch, "board": study.hardware.board,
               "overrides": study.hardware.overrides, "engine": study.hardware.engine,
               "method": study.pruning.method,
               "recipe": study.accuracy.recipe if study.accuracy.measure else None,
               "measure": study.accuracy.measure}
    if study.accuracy.precision != "fp32":
        context["accuracy_precision"] = study.accuracy.precision
    if study.accuracy.seeds:  # a seeded study's accuracies are means: points of their own
        context["accuracy_seeds"] = list(study.accuracy.seeds)
    return context


def context_hash(study: Study) -> str:
    return short_hash(context_of(study))


@dataclass(frozen=True)
class DesignPoint:
    """One design point: `block` None is the dense baseline (ratio 0, sparse strategy dense).

    `allocation` is None in a study without latency-aware points (its points are uniform and
    unlabelled), else "uniform" or "latency-aware"; a latency-aware point has a
    `speedup_target` and no prune ratio (NaN: the allocation decides how many blocks go).
    `balanced` is None in a study without PE-balanced points (unlabelled), else whether the
    point's masks are balanced over its accelerator's PE columns."""

    task: str
    block: BlockShape | None
    prune_ratio: float
    accelerator: AcceleratorChoice
    point_id: str
    allocation: str | None = None
    speedup_target: float | None = None
    balanced: bool | None = None

    @property
    def latency_aware(self) -> bool:
        return self.allocation == LATENCY_AWARE

    @property
    def block_shape(self) -> str:
        """The block shape as points.csv writes it: "16x16" or "dense"."""
        return DENSE if self.block is None else str(self.block)

    @property
    def hardware(self) -> tuple[tuple[str, Any], ...]:
        return self.accelerator.pairs()

    @property
    def sparse_strategy(self) -> str:
        return self.accelerator.sparse_strategy or "tile-skip"

    @property
    def accuracy_key(self) -> tuple:
        """(task, block shape text, ratio): one accuracy per key, shared by every accelerator;
        a latency-aware point's masks are its accelerator's: (task, block shape text,
        (allocation, target, hardware pairs)); a balanced point's: (task, block shape text,
        ratio, "balanced"), shared by the accelerators of one PE-array width (the runner
        groups its measurements by that width)."""
        if self.latency_aware:
            return (self.task, self.block_shape,
                    (LATENCY_AWARE, self.speedup_target, self.hardware))
        if self.balanced:
            return (self.task, self.block_shape, self.prune_ratio, BALANCED)
        return (self.task, self.block_shape, self.prune_ratio)

    def params(self) -> dict[str, Any]:
        """Flat parameters (points.csv names); with the allocation columns when the study
        labels them (a latency-aware point's prune ratio is None: not a parameter)."""
        out: dict[str, Any] = {"task": self.task, "block_shape": self.block_shape,
                               "prune_ratio": None if self.latency_aware else self.prune_ratio}
        for key, value in self.hardware:
            out[hw_column(key)] = value
        if self.allocation is not None:
            out["allocation"] = self.allocation
            out["speedup_target"] = self.speedup_target
        if self.balanced is not None:
            out["balanced"] = self.balanced
        return out


@dataclass(frozen=True, eq=False)
class DesignSpace:
    """The typed design space of one study, built once from the validated study."""

    study: Study
    context: str
    shapes: tuple[BlockShape, ...]
    choices: tuple[AcceleratorChoice, ...]
    _by_values: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, study: Study) -> DesignSpace:
        choices = tuple(accelerator_choices(study))
        by_values = {}
        for c in choices + tuple(c.with_strategy(DENSE) for c in choices):
            by_values[c.pairs()] = c
        return cls(study, context_hash(study), study.pruning.shapes, choices, by_values)

    def point(self, task: str, block: BlockShape | None, ratio: float,
              accelerator: AcceleratorChoice, balanced: bool = False) -> DesignPoint:
        """A (uniform) design point with its id; the dense baseline has ratio 0 and sparse
        strategy dense. The id is that of a study without latency-aware points; `balanced`
        (PE-balanced masks; ignored for the dense baseline and ratio 0, whose masks keep every
        block) adds `balanced: true` to the hashed parameters."""
        if block is None:
            ratio = 0.0
            accelerator = accelerator.with_strategy(DENSE)
        ratio = round(float(ratio), 6)
        balanced = bool(balanced) and block is not None and ratio > 0
        hashed = {"context": self.context, "task": task,
                  "block_shape": DENSE if block is None else str(block),
                  "prune_ratio": ratio, "hardware": accelerator.pairs()}
        if balanced:
            hashed["balanced"] = True
        pid = short_hash(hashed)
        label = UNIFORM if self.study.pruning.latency_aware else None
        tag = balanced if self.study.pruning.balanced_points else None
        return DesignPoint(task, block, ratio, accelerator, pid, label, balanced=tag)

    def aware_point(self, task: str, block: BlockShape, target: float,
                    accelerator: AcceleratorChoice) -> DesignPoint:
        """A latency-aware design point (masks allocated on `accelerator` for the simulated
        speedup `target` over its dense run) with its id."""
        target = round(float(target), 6)
        pid = short_hash({"context": self.context, "task": task, "block_shape": str(block),
                          "allocation": LATENCY_AWARE, "speedup_target": target,
                          "hardware": accelerator.pairs()})
        return DesignPoint(task, block, math.nan, accelerator, pid, LATENCY_AWARE, target)

    def points(self) -> list[DesignPoint]:
        """The grid, deterministic: per task, the dense baseline of each accelerator, then block
        shapes x ratios x balance choices (false first) x accelerators, then block shapes x
        speedup targets x accelerators. Duplicates (e.g. one baseline for several strategies,
        a balanced ratio 0) are removed keeping the first."""
        out: dict[str, DesignPoint] = {}
        balance = self.study.pruning.balance_choices
        for task in self.study.tasks:
            candidates = [self.point(task, None, 0.0, c) for c in self.choices]
            candidates += [self.point(task, block, ratio, c, balanced=b) for block in self.shapes
                           for ratio in self.study.pruning.ratios for b in balance
                           for c in self.choices]
            candidates += [self.aware_point(task, block, target, c) for block in self.shapes
                           for target in self.study.pruning.targets for c in self.choices]
            for p in candidates:
                out.setdefault(p.point_id, p)
        return list(out.values())

    # --- from stored text (records, optuna parameters) back to typed values -------------------
    def shape_of(self, text: str) -> BlockShape | None:
        """The block shape named `text` ("dense" -> None); the study's own shapes are looked up,
        a shape only a store written by an earlier study holds is parsed."""
        if text == DENSE:
            return None
        for shape in self.shapes:
            if str(shape) == text:
                return shape
        return BlockShape.parse(text)

    def choice_of(self, values: Mapping[str, Any]) -> AcceleratorChoice:
        """The accelerator choice of study key -> value (looked up in the space; converted by
        codesign.study when a store holds a choice the study no longer lists)."""
        hit = self._by_values.get(tuple(sorted(values.items())))
        return hit if hit is not None else AcceleratorChoice.from_study_values(values)

    def point_of_record(self, rec: Mapping[str, Any], dense: bool = False) -> DesignPoint:
        """The design point of a stored record (or of its accelerator's dense baseline)."""
        values = {k: rec[hw_column(k)] for k in self.study.hardware.swept()}
        block = None if dense else self.shape_of(rec["block_shape"])
        if not dense and rec.get("allocation") == LATENCY_AWARE:
            return self.aware_point(rec["task"], block, rec["speedup_target"],
                                    self.choice_of(values))
        return self.point(rec["task"], block, 0.0 if dense else rec["prune_ratio"],
                          self.choice_of(values),
                          balanced=not dense and is_balanced(rec.get("balanced")))


def distributions(study: Study, include_dense: bool = True) -> dict[str, Any]:
    """The design space as optuna categorical distributions (points.csv column names)."""
    from optuna.distributions import CategoricalDistribution

    aware = study.pruning.latency_aware
    ratios = sorted(set([0.0] + study.pruning.ratios))
    dist = {"task": CategoricalDistribution(list(study.tasks)),
            "block_shape": CategoricalDistribution(
                ([DENSE] if include_dense else []) + list(study.pruning.block_shapes)),
            "prune_ratio": CategoricalDistribution(ratios + ([None] if aware else []))}
    for key, values in study.hardware.swept().items():
        choices = list(values)
        if key == "sparse_strategy":
            choices = [DENSE] + choices
        dist[hw_column(key)] = CategoricalDistribution(choices)
    if aware:  # a uniform-only study's distributions are as before
        dist["allocation"] = CategoricalDistribution([UNIFORM, LATENCY_AWARE])
        dist["speedup_target"] = CategoricalDistribution([None] + study.pruning.targets)
    if study.pruning.balanced_points:  # false too: the dense baselines are unbalanced
        dist["balanced"] = CategoricalDistribution([False, True])
    return dist
