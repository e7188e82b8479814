"""The study's `pruning` section: method, block shapes, the uniform ratios, the latency-aware
allocation's speedup targets and PE-balanced blocks, as a pydantic model.

What is modelled: which masks a study's points prune with. Uniform points remove the same
fraction of blocks from every matrix (`compression` or `prune_ratios`); latency-aware points
(`allocation`, `speedup_targets`) have their blocks chosen per accelerator for a simulated
speedup (codesign.pruning.allocation); `balanced` makes uniform points' masks PE-balanced over
their accelerator's PE columns (codesign.pruning.balance), or sweeps both. Validators raise
ValueError with one line (codesign.study.loading locates it). What is ignored: the accuracy
stages and the search, which codesign.study.schema.Study checks against this section.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Union

from hwmodels import BlockShape
from pydantic import Field, field_validator, model_validator

from codesign.study.validators import _as_list, _choices, _item_error, _items, _Strict

#: pruning.allocation: every matrix loses the same fraction of blocks (the ratios), or the
#: blocks are chosen per accelerator to meet a simulated speedup (codesign.pruning.allocation)
UNIFORM, LATENCY_AWARE = "uniform", "latency-aware"
ALLOCATIONS = (UNIFORM, LATENCY_AWARE)


class PruningSpec(_Strict):
    """Block pruning: method, block shapes, and the compression (or prune) ratios to try."""

    # magnitude: block L2 norm (oneshot); calibrated: OBS-proxy saliency and least-squares re-fit
    # (a first stage of fidelity calibrated); rgl: reweighted group Lasso (a last stage rgl)
    method: Literal["magnitude", "calibrated", "rgl"] = "magnitude"
    block_shapes: list[str] = Field(min_length=1)
    compression: list[float] | None = None
    prune_ratios: list[float] | None = None
    #: PE-balanced blocks (codesign.pruning.balance; `codesign prune --balanced`) for the
    #: uniform points: false (as before), true (each point's masks balanced over its own
    #: accelerator's PE columns) or [false, true] (both kinds, labelled `balanced`)
    balanced: Union[bool, list[bool]] = False
    #: how the blocks are allocated: uniform (the ratios, as before) and/or latency-aware (per
    #: accelerator, to meet each of `speedup_targets`, the calibrated saliency deciding which)
    allocation: list[str] = Field(default_factory=lambda: [UNIFORM])
    #: simulated speedups over the same accelerator's dense run (latency-aware points' axis)
    speedup_targets: list[float] | None = None

    @field_validator("block_shapes", mode="before")
    @classmethod
    def _blocks(cls, v: Any) -> list[str]:
        out = []
        for i, item in _items(v):
            try:
                out.append(str(BlockShape.parse(item)))
            except ValueError as exc:
                raise _item_error(i, str(exc))
        if len(set(out)) != len(out):
            raise ValueError("a block shape is listed twice")
        return out

    @field_validator("compression")
    @classmethod
    def _compression(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            for i, c in enumerate(v):
                if not (1.0 <= c <= 1000.0) or not math.isfinite(c):
                    raise _item_error(i, f"compression {c:g} out of range; allowed: 1 (dense) "
                                      "to 1000")
        return v

    @field_validator("prune_ratios")
    @classmethod
    def _ratios(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            for i, r in enumerate(v):
                if not (0.0 <= r < 1.0):
                    raise _item_error(i, f"prune ratio {r:g} out of range; allowed: "
                                      "0 <= ratio < 1")
        return v

    @field_validator("balanced", mode="before")
    @classmethod
    def _balanced(cls, v: Any) -> Any:
        """true, false or a list of them (kept as written, so a scalar stays a scalar)."""
        for i, x in _items(v):
            if not isinstance(x, bool):
                raise _item_error(i, f"{x!r} is not true or false; allowed: true, false, or "
                                  "[false, true] to sweep both")
        if isinstance(v, (list, tuple)):
            if not v or len(set(v)) != len(v):
                raise ValueError("give true, false, or [false, true] (each value once)")
            return list(v)
        return v

    @field_validator("allocation", mode="before")
    @classmethod
    def _allocation(cls, v: Any) -> list[str]:
        out = _choices(v, ALLOCATIONS, "an allocation", lambda x: x.lower().replace("_", "-"))
        if len(set(out)) != len(out):
            raise ValueError("an allocation is listed twice")
        return out

    @field_validator("speedup_targets", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        if v is None:
            return v
        for i, x in _items(v):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 1.0 < x <= 100.0:
                raise _item_error(i, f"speedup target {x!r} out of range; allowed: a number "
                                  "above 1 (the dense run) up to 100")
        out = [round(float(x), 6) for x in _as_list(v)]
        if len(set(out)) != len(out):
            raise ValueError("a speedup target is listed twice")
        return out

    @model_validator(mode="after")
    def _one_of(self) -> "PruningSpec":
        if self.balanced_points and self.latency_aware:
            raise ValueError("balanced: true goes with allocation uniform only (a latency-aware "
                             "allocation levels the PE-column groups itself): set balanced: "
                             "false, or remove 'latency-aware' from 'allocation' (a second "
                             "study can sweep it)")
        if LATENCY_AWARE in self.allocation:
            if not self.speedup_targets:
                raise ValueError("allocation latency-aware needs 'speedup_targets' (e.g. "
                                 "[1.5, 2]: simulated speedups over the same accelerator's "
                                 "dense run)")
            if self.method != "calibrated":
                raise ValueError("allocation latency-aware ranks blocks by the calibrated "
                                 "saliency: set 'method: calibrated' (with a first accuracy "
                                 "stage of fidelity calibrated)")
        elif self.speedup_targets is not None:
            raise ValueError("'speedup_targets' are read only with allocation latency-aware: "
                             "add it to 'allocation' or remove the key")
        if UNIFORM not in self.allocation:
            if self.compression is not None or self.prune_ratios is not None:
                raise ValueError("'compression' / 'prune_ratios' are read only with allocation "
                                 "uniform: add it to 'allocation' or remove the key")
            return self
        if (self.compression is None) == (self.prune_ratios is None):
            raise ValueError("give exactly one of 'compression' (e.g. [1, 2, 4]) or "
                             "'prune_ratios' (e.g. [0.5, 0.75])")
        return self

    @property
    def ratios(self) -> list[float]:
        """Prune ratios (fraction of blocks removed) of the uniform points, rounded so hashes
        are stable ([] when the study has no uniform allocation)."""
        if self.prune_ratios is not None:
            vals = self.prune_ratios
        elif self.compression is not None:
            vals = [1.0 - 1.0 / c for c in self.compression]
        else:
            vals = []
        return sorted({round(r, 6) for r in vals})

    @property
    def latency_aware(self) -> bool:
        """Whether the study has latency-aware points (then its points.csv labels every point
        with `allocation` and `speedup_target`)."""
        return LATENCY_AWARE in self.allocation

    @property
    def targets(self) -> list[float]:
        """The latency-aware points' speedup targets, ascending ([] without them)."""
        return sorted(self.speedup_targets or []) if self.latency_aware else []

    @property
    def balance_choices(self) -> list[bool]:
        """The uniform points' balance choices, false first ([False] without the key)."""
        return sorted(set(_as_list(self.balanced)))

    @property
    def balanced_points(self) -> bool:
        """Whether the study has PE-balanced points (then its points.csv labels every point
        with `balanced`)."""
        return True in self.balance_choices

    @property
    def shapes(self) -> tuple[BlockShape, ...]:
        """The block shapes as typed values, in the study's order (from the validated text)."""
        return tuple(BlockShape.parse(s) for s in self.block_shapes)
