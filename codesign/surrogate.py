"""Accuracy surrogate: a monotone fit of measured points, always labelled "surrogate".

What is modelled: for one (model, task, block shape, fidelity) the headline dev metric is assumed
to be a non-increasing function of the prune ratio. The measured points (every measured record
also carries its dense baseline, which is the point at ratio 0) are fitted by isotonic regression
(scikit-learn, decreasing), and the estimate between measured ratios is the linear interpolation
of that fit. The uncertainty combines (a) the fit's residual spread (seed noise, non-monotone
measurements), and (b) the interpolation gap: between two measured ratios a monotone function can
lie anywhere between the two fitted values, so half their difference is added (in quadrature).

What is ignored: any dependence on the hardware, differences between seeds beyond their spread,
and the shape of the curve between points (no smoothness is assumed). Extrapolation beyond the
largest measured ratio is refused unless asked for; when asked, the last fitted segment's slope is
extended and the uncertainty grows with the distance (labelled `extrapolated=True`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class SurrogateError(ValueError):
    """The surrogate cannot answer (unknown group, extrapolation refused, no points)."""


@dataclass(frozen=True)
class SurrogateEstimate:
    """An accuracy figure that was NOT measured: estimate +- uncertainty, with its provenance."""

    task: str
    block_shape: str
    fidelity: str
    model: str
    metric: str
    ratio: float
    estimate: float
    uncertainty: float
    extrapolated: bool
    fitted_from: tuple[tuple[float, float], ...]  # (ratio, measured metric) points of the fit
    source: str = "surrogate"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "block_shape": self.block_shape, "fidelity": self.fidelity,
                "model": self.model, "metric": self.metric, "ratio": self.ratio,
                "estimate": self.estimate, "uncertainty": self.uncertainty,
                "extrapolated": self.extrapolated, "source": self.source,
                "fitted_from": [list(p) for p in self.fitted_from]}


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


@dataclass(frozen=True)
class _Curve:
    ratios: np.ndarray  # distinct measured ratios, ascending
    fitted: np.ndarray  # isotonic (non-increasing) fit at those ratios
    residual_std: float
    metric: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AccuracySurrogate:
    """Monotone curves per (model, task, block shape, fidelity), built by `fit(records)`."""

    curves: Mapping[tuple[str, str, str, str], _Curve] = field(default_factory=dict)

    @classmethod
    def fit(cls, records: Iterable[Any]) -> "AccuracySurrogate":
        """Fit from AccuracyRecords or mappings with task, block_shape, ratio, pruned, dense.

        Records labelled as anything other than measured (e.g. earlier surrogate output) are
        rejected, so estimates are never fitted on estimates.
        """
        from sklearn.isotonic import IsotonicRegression

        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for rec in records:
            source = _get(rec, "source", "measured")
            if source != "measured":
                raise SurrogateError(f"record with source={source!r}: the surrogate fits measured "
                                     "points only")
            block = _get(rec, "block_shape")
            ratio = float(_get(rec, "ratio"))
            if block in (None, "", "dense") or ratio == 0.0:
                # a dense record anchors every curve of its task through its `dense` field
                block = None
            key_tail = (str(_get(rec, "model", "")), str(_get(rec, "task")),
                        str(_get(rec, "fidelity", "")))
            metric = str(_get(rec, "metric", ""))
            dense = _get(rec, "dense")
            if block is None:
                continue
            g = groups.setdefault((key_tail[0], key_tail[1], str(block), key_tail[2]),
                                  {"x": [], "y": [], "dense": set(), "metric": metric})
            g["x"].append(ratio)
            g["y"].append(float(_get(rec, "pruned")))
            if dense is not None and not math.isnan(float(dense)):
                # every record of a group repeats the same dense baseline: count it once
                g["dense"].add(round(float(dense), 12))
        curves = {}
        for key, g in groups.items():
            x = np.asarray(g["x"] + [0.0] * len(g["dense"]), dtype=float)
            y = np.asarray(g["y"] + sorted(g["dense"]), dtype=float)
            iso = IsotonicRegression(increasing=False).fit(x, y)
            fit_y = iso.predict(x)
            dof = max(len(x) - len(np.unique(x)), 0)
            # residual spread: only repeated ratios or monotonicity violations leave residuals
            resid = float(np.sqrt(np.sum((y - fit_y) ** 2) / max(dof, 1))) if len(x) > 1 else 0.0
            ux = np.unique(x)
            curves[key] = _Curve(ratios=ux, fitted=iso.predict(ux), residual_std=resid,
                                 metric=g["metric"],
                                 points=tuple(sorted(zip(x.tolist(), y.tolist()))))
        return cls(curves=curves)

    def groups(self) -> list[tuple[str, str, str, str]]:
        """(model, task, block shape, fidelity) of every fitted curve."""
        return sorted(self.curves)

    def _curve(self, task: str, block_shape: str, fidelity: str | None,
               model: str | None) -> tuple[tuple[str, str, str, str], _Curve]:
        match = [k for k in self.curves
                 if k[1] == task and k[2] == block_shape
                 and (fidelity is None or k[3] == fidelity) and (model is None or k[0] == model)]
        if not match:
            raise SurrogateError(f"no measured points for task={task} block={block_shape}"
                                 f"{'' if fidelity is None else ' fidelity=' + fidelity}: measure "
                                 "some first (known groups: "
                                 f"{', '.join('/'.join(k[1:]) for k in self.groups()[:6]) or 'none'})")
        if len(match) > 1:
            raise SurrogateError(f"task={task} block={block_shape} has curves for several "
                                 f"models/fidelities {sorted(match)}: pass model= and fidelity=")
        return match[0], self.curves[match[0]]

    def predict(self, task: str, block_shape: str, ratio: float, *, fidelity: str | None = None,
                model: str | None = None, allow_extrapolation: bool = False) -> SurrogateEstimate:
        """Estimate the headline metric at `ratio`; refuses ratios outside the measured range."""
        key, c = self._curve(task, block_shape, fidelity, model)
        lo, hi = float(c.ratios[0]), float(c.ratios[-1])
        r = float(ratio)
        extrapolated = r < lo - 1e-12 or r > hi + 1e-12
        if extrapolated and not allow_extrapolation:
            raise SurrogateError(f"ratio {r:g} is outside the measured range [{lo:g}, {hi:g}] for "
                                 f"{task}/{block_shape}: measure it, or pass "
                                 "allow_extrapolation=True")
        if not extrapolated:
            est = float(np.interp(r, c.ratios, c.fitted))
            i = int(np.searchsorted(c.ratios, r))
            exact = i < len(c.ratios) and abs(c.ratios[i] - r) < 1e-12
            gap = 0.0 if exact else abs(float(c.fitted[i - 1] - c.fitted[i])) / 2.0
            unc = math.hypot(c.residual_std, gap)
        else:
            # extend the nearest segment's slope (non-increasing); the uncertainty grows with the
            # distance from the measured range: twice the extended drop, and at least the
            # distance itself (metric and ratio are both on 0..1 scales) when the slope is flat
            if len(c.ratios) >= 2:
                j = (len(c.ratios) - 2) if r > hi else 0
                slope = float(c.fitted[j + 1] - c.fitted[j]) / float(c.ratios[j + 1] - c.ratios[j])
            else:
                slope = 0.0
            edge = hi if r > hi else lo
            edge_val = float(c.fitted[-1] if r > hi else c.fitted[0])
            dist = abs(r - edge)
            est = edge_val + slope * (r - edge)
            unc = math.hypot(c.residual_std, max(2.0 * abs(slope) * dist, dist))
        return SurrogateEstimate(task=key[1], block_shape=key[2], fidelity=key[3], model=key[0],
                                 metric=c.metric, ratio=r, estimate=est, uncertainty=float(unc),
                                 extrapolated=extrapolated, fitted_from=c.points)

    def measured_range(self, task: str, block_shape: str, *, fidelity: str | None = None,
                       model: str | None = None) -> tuple[float, float]:
        _, c = self._curve(task, block_shape, fidelity, model)
        return float(c.ratios[0]), float(c.ratios[-1])
