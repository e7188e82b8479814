"""The report's lines on precision as a co-design axis: which precision x block shape x
compression combinations are on the Pareto front, and whether the narrowest-weight dense design
beats the widest-weight pruned one at equal accuracy (e.g. 4-bit dense against 8-bit 2x-pruned).

What is modelled: a study that sweeps ``hardware.precision`` (points.csv column ``precision``
with more than one value). A combination is (precision, block shape, compression); the front is
the study's Pareto set (codesign.plots.study_pareto_mask), counted per combination. The
comparison takes, among the designs meeting the constraints, the fastest dense design at the
precision with the fewest weight bits and the fastest pruned design at the precision with the
most, at the compression nearest 2x (2x pruning saves the weight bytes 8 -> 4 bits save),
and sets their latency, energy and accuracy side by side; "equal accuracy" means the 95%
dev-set intervals overlap (codesign.pareto.intervals_overlap), never a point-estimate ranking.

What is ignored: precisions with the same weight bits (the first in the table is taken), and
points without a finite latency. Each line is data; nothing here reads files.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from codesign import report_noise as noise
from codesign.pareto import intervals_overlap, is_dense

#: the compression the narrowest-weight dense design is set against (see the docstring)
TARGET_COMPRESSION = 2.0


def _weight_bits(precision: str) -> int:
    from hwmodels.accelerator import precision_spec

    try:
        return precision_spec(str(precision)).weight_bits
    except ValueError:
        return 0


def sweeps_precision(points: pd.DataFrame) -> bool:
    """Whether the table holds more than one accelerator precision."""
    return "precision" in points and points["precision"].astype(str).nunique() > 1


def combination(row: Mapping) -> str:
    """`w4a8 dense` or `w8a8 16x16 2x`: a row's precision x block shape x compression."""
    block = str(row.get("block_shape"))
    if block.lower() == "dense" or float(row.get("compression", 1.0)) == 1.0:
        return f"{row.get('precision')} dense"
    return f"{row.get('precision')} {block} {float(row['compression']):.3g}x"


def front_combinations_line(points: pd.DataFrame, in_set: np.ndarray) -> list[str]:
    """Which combinations the Pareto set holds (with how many points each) and which it lacks."""
    combos = [combination(r) for r in points.to_dict("records")]
    on = pd.Series(combos)[np.asarray(in_set, dtype=bool)].value_counts(sort=False)
    if on.empty:
        return []
    off = [c for c in dict.fromkeys(combos) if c not in on.index]
    return ["Precision x block shape x compression on the Pareto set: "
            + ", ".join(f"{c} ({n})" for c, n in on.items())
            + (f"; not on it: {', '.join(off)}" if off else "") + "."]


def _fastest(rows: pd.DataFrame) -> pd.Series | None:
    rows = rows.loc[np.isfinite(pd.to_numeric(rows["latency_ms"], errors="coerce")
                                .to_numpy(dtype=float))]
    return None if rows.empty else rows.sort_values("latency_ms", kind="mergesort").iloc[0]


def _versus(a: pd.Series, b: pd.Series) -> str:
    """How design `a` compares with design `b`: speed, energy and accuracy (by intervals)."""
    speed = float(b["latency_ms"]) / float(a["latency_ms"])
    pace = f"{speed:.3g}x faster" if speed >= 1 else f"{1 / speed:.3g}x slower"
    text = f"{combination(a)} is {pace} than {combination(b)}"
    if pd.notna(a.get("energy_mj")) and pd.notna(b.get("energy_mj")):
        text += f" at {float(a['energy_mj']) / float(b['energy_mj']):.3g}x its energy"
    overlap = intervals_overlap(noise.interval_of(a), noise.interval_of(b))
    if overlap is None:
        acc = "accuracy intervals unknown: not compared"
    elif overlap:
        acc = "at equal accuracy (95% intervals overlap)"
    else:
        better = a if float(a["accuracy"]) > float(b["accuracy"]) else b
        acc = f"but {combination(better)} is more accurate (intervals do not overlap)"
    return f"{text}, {acc}"


def dense_versus_pruned_lines(data: pd.DataFrame, feas: np.ndarray,
                              describe: Callable[[pd.Series, str], str]) -> list[str]:
    """The fastest narrowest-weight dense design against the fastest widest-weight pruned design
    at the compression nearest 2x, both meeting the constraints (the module docstring)."""
    feas = np.asarray(feas, dtype=bool)
    cand = data.loc[feas]
    if cand.empty or not sweeps_precision(data):
        return []
    bits = data["precision"].astype(str).map(_weight_bits).to_numpy()
    narrow, wide = bits.min(), bits.max()
    if narrow == wide:
        return []
    dense = data.loc[feas & is_dense(data) & (bits == narrow)]
    pruned_all = data.loc[~is_dense(data) & (bits == wide)]
    pruned = data.loc[feas & ~is_dense(data) & (bits == wide)]
    if dense.empty or pruned_all.empty:
        return []
    # when no such pruned design meets the constraints, the fastest one that does not is named
    # (the comparison is then decided by the constraint)
    meets = not pruned.empty
    pool = pruned if meets else pruned_all
    comp = pd.to_numeric(pool["compression"], errors="coerce")
    nearest = comp.iloc[int(np.argmin(np.abs(comp.to_numpy() - TARGET_COMPRESSION)))]
    a, b = _fastest(dense), _fastest(pool.loc[np.isclose(comp, nearest)])
    if a is None or b is None:
        return []
    which = "meeting them" if meets else "(none meets the constraints)"
    return [describe(a, f"Fastest {narrow}-bit-weight dense design meeting the constraints"),
            describe(b, f"Fastest {wide}-bit-weight design pruned {nearest:.3g}x {which}"),
            _versus(a, b) + "."]


def precision_lines(points: pd.DataFrame, data: pd.DataFrame, in_set: np.ndarray,
                    feas: np.ndarray, describe: Callable[[pd.Series, str], str]) -> list[str]:
    """Every precision line of one task's answer (none unless the study sweeps precision);
    `data` is `points` with speedups (codesign.pareto.with_speedup), `describe` the report's
    one-line design description."""
    if not sweeps_precision(points):
        return []
    return front_combinations_line(points, in_set) + dense_versus_pruned_lines(data, feas,
                                                                               describe)
