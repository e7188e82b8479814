"""What every figure of a study shares: block-shape colours and order, axis labels, column
helpers of a points table (pure functions; no matplotlib import).

What is modelled: a fixed colour per common block shape, so a shape looks the same in every
figure of every study (others take the remaining colours in sorted order, dense is black);
shapes ordered from fine to coarse; a GLUE metric's axis title; the hardware source label; the
boolean columns of points.csv as read back from CSV text. Ignored: anything drawn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwmodels import BlockShape

_CANONICAL_SHAPES = ("1x16", "4x4", "8x8", "16x16", "32x32", "64x64", "256x1", "1x256", "32x1",
                     "16x1", "1x32", "2x2", "128x1", "64x1")
_PALETTE = ("#1f77b4", "#ff7f0e", "#8c564b", "#2ca02c", "#d62728", "#9467bd", "#17becf",
            "#bcbd22", "#e377c2", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5",
            "#f7b6d2", "#c49c94", "#dbdb8d", "#9edae5")

def shape_colors(shapes: Sequence[str]) -> dict[str, str]:
    """{block shape: colour}: canonical shapes keep their colour, others take the free ones."""
    colors: dict[str, str] = {}
    used = set()
    for shape in shapes:
        if str(shape).lower() == "dense":
            colors[shape] = "black"
        elif shape in _CANONICAL_SHAPES:
            colors[shape] = _PALETTE[_CANONICAL_SHAPES.index(shape)]
            used.add(colors[shape])
    free = [c for c in _PALETTE if c not in used and c not in
            {_PALETTE[i] for i in range(len(_CANONICAL_SHAPES))}]
    free += [c for c in _PALETTE[:len(_CANONICAL_SHAPES)] if c not in used]
    for shape in sorted(s for s in shapes if s not in colors):
        colors[shape] = free.pop(0) if free else "#555555"
    return colors


def shape_order(shapes: Sequence[str]) -> list[str]:
    """Block shapes from fine to coarse (block area, then rows), 'dense' first."""
    def key(shape: str) -> tuple:
        if str(shape).lower() == "dense":
            return (0, 0, 0, "")
        try:
            bh, bw = BlockShape.parse(str(shape))
        except ValueError:
            return (2, 0, 0, str(shape))
        return (1, bh * bw, bh, str(shape))
    return sorted(dict.fromkeys(map(str, shapes)), key=key)


def task_label(task: Any, metric: Any = None, *, split: str = "dev") -> str:
    """Axis title of a GLUE metric, e.g. 'SST-2 accuracy (dev)' or 'CoLA matthews corr (dev)'."""
    name = str(task)
    try:
        from codesign.glue import get_task
        spec = get_task(name)
        name = spec.folder
        metric = metric if isinstance(metric, str) and metric else spec.headline
    except (ImportError, ValueError):
        pass
    metric = str(metric) if isinstance(metric, str) and metric else "accuracy"
    return f"{name} {metric.replace('_', ' ')} ({split})"


def source_label(points: pd.DataFrame, *, column: str = "hw_source") -> str:
    """'simulated: analytical/0.1' from hw_source values (joined when several)."""
    if column not in points:
        return ""
    values = sorted({str(v) for v in points[column].dropna()})
    return ", ".join(v.replace(":", ": ", 1) for v in values)


def truthy(series: pd.Series) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "yes")).to_numpy()


def fits(points: pd.DataFrame) -> np.ndarray:
    return truthy(points["fits"]) if "fits" in points else np.ones(len(points), dtype=bool)


def figure_title(points: pd.DataFrame, study: Mapping | None, what: str) -> str:
    parts = [what]
    name = (study or {}).get("name") if isinstance(study, Mapping) else None
    if name:
        parts.append(str(name))
    if "model" in points and points["model"].nunique() == 1:
        parts.append(str(points["model"].iloc[0]))
    board = None
    if isinstance(study, Mapping) and isinstance(study.get("hardware"), Mapping):
        board = study["hardware"].get("board")
    if board:
        parts.append(f"on {board}")
    parts.append(f"{len(points)} design points")
    return parts[0] + ": " + ", ".join(parts[1:])


def require_columns(points: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in points]
    if missing:
        raise ValueError(f"points table lacks column(s) {', '.join(missing)}: is this a "
                         f"codesign points.csv?")


__all__ = ["figure_title", "fits", "require_columns", "shape_colors", "shape_order",
           "source_label", "task_label", "truthy"]
