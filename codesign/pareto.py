"""Pareto fronts of a study's design points (non-dominated sorting over named objectives).

What is modelled: plain Pareto dominance over numeric columns of a points table. A row A dominates
a row B when A is at least as good as B on every objective and strictly better on at least one
("min" objectives: lower is better, "max": higher is better). A row with a NaN (or missing value)
in any objective is never on the front and never dominates another row: an unknown accuracy must
not hide a measured design. Exact ties are not dominance, so identical rows are all on the front.

`constraint_values` is THE feasibility rule of the tool (the sweep stores its result as the
`feasible` column; the report applies it to tables that lack the column).

What is ignored by the fronts: constraints (filter the frame first, e.g. on `feasible`),
uncertainty (the fronts rank point estimates; `intervals_overlap`, `drop_interval` and
`interval_straddles` are the helpers with which the report says where the dev-set noise makes a
ranking or a constraint undecided), and epsilon-dominance. The sort is an exact O(n^2 k) pairwise
comparison in numpy, done in row chunks so memory stays ~O(chunk * n * k) booleans; that is
instant for the few thousand points a study holds.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: The objectives a study has when it names none: the three of the study's question.
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("latency_ms", "min"),
    ("energy_mj", "min"),
    ("accuracy", "max"),
)

_DIRECTIONS = {
    "min": "min", "minimize": "min", "minimise": "min", "lower": "min",
    "max": "max", "maximize": "max", "maximise": "max", "higher": "max",
}

# Cap on the pairwise comparison block (rows x rows x objectives booleans) so a big table does
# not allocate n^2 at once.
_BLOCK_ELEMENTS = 4_000_000


def constraint_values(rec: Mapping[str, Any], *, max_accuracy_drop: float | None,
                      fits_board: bool) -> dict[str, float]:
    """optuna's named constraints of a record, feasible <= 0: the accuracy drop over the limit
    (points; an unknown accuracy counts as feasible: hardware-only studies) and not fitting the
    board when `fits_board` is required. Plain values, so a table read back from points.csv and
    study.yaml can use the same rule."""
    out = {}
    if max_accuracy_drop is not None:
        drop = rec.get("accuracy_drop")
        out["accuracy_drop"] = float(drop) - max_accuracy_drop if drop is not None and \
            math.isfinite(drop) else 0.0
    out["fits"] = 0.0 if rec.get("fits", True) or not fits_board else 1.0
    return out


# --- uncertainty of the accuracy axis (dev-set bootstrap intervals) -----------------------------


def _finite(*values: Any) -> bool:
    try:
        return all(v is not None and math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def drop_interval(dense: float, low: float, high: float, *,
                  dense_model: bool = False) -> tuple[float, float]:
    """(low, high) of the accuracy drop in points (100 x metric) from a pruned model's interval
    [low, high] of its metric, set against the dense model's point estimate `dense`.

    What is modelled: the dev-set noise of the pruned measurement only; the dense model's own
    noise is not added (the drop is measured against that one dense model) and the correlation
    of the two models' errors on the same dev examples is ignored (no paired bootstrap: records
    do not keep prediction vectors). For the dense model itself (`dense_model`) the drop is 0
    exactly: (0.0, 0.0). NaN when an input is unknown.
    """
    if dense_model:
        return (0.0, 0.0) if _finite(dense) else (math.nan, math.nan)
    if not _finite(dense, low, high):
        return math.nan, math.nan
    return 100.0 * (float(dense) - float(high)), 100.0 * (float(dense) - float(low))


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    """Whether two (low, high) intervals overlap: two designs whose accuracy intervals overlap
    are indistinguishable at this dev-set size. None when either interval is unknown (NaN).

    Overlap of two 95% intervals is a stricter test of a difference than a 95% test of the
    difference itself: it errs towards calling designs indistinguishable."""
    if not _finite(*a, *b):
        return None
    return max(float(a[0]), float(b[0])) <= min(float(a[1]), float(b[1]))


def interval_straddles(low: float, high: float, limit: float) -> bool:
    """Whether [low, high] has values on both sides of `limit` (low <= limit < high, as the
    constraint `drop <= limit` splits it): the constraint is not decided at this dev-set size.
    False when the interval is unknown."""
    return _finite(low, high, limit) and float(low) <= float(limit) < float(high)


def _direction(value: Any, where: str) -> str:
    key = str(getattr(value, "value", value)).strip().lower()
    if key not in _DIRECTIONS:
        raise ValueError(f"objective {where}: direction {value!r} is not one of 'min' or 'max'")
    return _DIRECTIONS[key]


def normalize_objectives(objectives: Any) -> list[tuple[str, str]]:
    """Objectives as a list of (column, "min"|"max").

    Accepts the contract's sequence of (column, direction) pairs, a mapping column -> direction,
    strings "latency_ms:min" / "-latency_ms" / "+accuracy", or mappings as a study file writes them
    ({"metric"|"name"|"column"|"key": ..., "direction"|"goal"|"sense": ...}). Directions may be
    spelled min/max or minimize/maximize. None means DEFAULT_OBJECTIVES.
    """
    if objectives is None:
        return list(DEFAULT_OBJECTIVES)
    if isinstance(objectives, Mapping) and not any(
        k in objectives for k in ("metric", "name", "column", "key")
    ):
        items: list[Any] = [(k, v) for k, v in objectives.items()]
    elif isinstance(objectives, (str, Mapping)):
        items = [objectives]
    else:
        items = list(objectives)
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        where = f"[{i}]"
        if isinstance(item, str):
            text = item.strip()
            if ":" in text:
                name, _, direction = text.partition(":")
                out.append((name.strip(), _direction(direction, where)))
            elif text[:1] in "+-":
                out.append((text[1:].strip(), "max" if text[0] == "+" else "min"))
            else:
                raise ValueError(f"objective {where}: {item!r} needs a direction, e.g. "
                                 f"'{text}:min' or ('{text}', 'max')")
        elif isinstance(item, Mapping):
            name = next((item[k] for k in ("metric", "name", "column", "key") if k in item), None)
            direction = next((item[k] for k in ("direction", "goal", "sense", "mode")
                              if k in item), None)
            if name is None or direction is None:
                raise ValueError(f"objective {where}: {dict(item)!r} needs 'metric' and "
                                 f"'direction' (min or max)")
            out.append((str(name), _direction(direction, where)))
        elif isinstance(item, Sequence) and len(item) == 2:
            out.append((str(item[0]), _direction(item[1], where)))
        else:
            name = getattr(item, "metric", None) or getattr(item, "name", None)
            direction = getattr(item, "direction", None) or getattr(item, "goal", None)
            if name is None or direction is None:
                raise ValueError(f"objective {where}: {item!r} is not a (column, 'min'|'max') pair")
            out.append((str(name), _direction(direction, where)))
    if not out:
        raise ValueError("objectives: at least one (column, 'min'|'max') pair is needed")
    return out


def _cost_matrix(df: pd.DataFrame, objectives: list[tuple[str, str]]) -> np.ndarray:
    """Objective values as float costs (lower is better) of shape (rows, objectives)."""
    missing = [name for name, _ in objectives if name not in df.columns]
    if missing:
        raise ValueError(f"objectives {missing} are not columns of the points table "
                         f"(columns: {', '.join(map(str, df.columns[:12]))}...)")
    cols = []
    for name, direction in objectives:
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        cols.append(-values if direction == "max" else values)
    if not cols:
        return np.empty((len(df), 0))
    return np.column_stack(cols)


def pareto_mask_array(costs: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a (rows, objectives) cost array, all objectives minimised.

    Rows holding a NaN are never non-dominated and never dominate.
    """
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"costs must be a 2-D (rows, objectives) array, got shape {costs.shape}")
    n, k = costs.shape
    valid = ~np.isnan(costs).any(axis=1) if k else np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return mask
    pts = costs[idx]
    m = pts.shape[0]
    dominated = np.zeros(m, dtype=bool)
    chunk = max(1, _BLOCK_ELEMENTS // max(1, m * max(k, 1)))
    for start in range(0, m, chunk):
        block = pts[start:start + chunk]  # candidates being tested
        # le[a, b] = every objective of row b <= candidate a; lt[a, b] = some objective strictly <.
        le = (pts[None, :, :] <= block[:, None, :]).all(axis=2)
        lt = (pts[None, :, :] < block[:, None, :]).any(axis=2)
        dominated[start:start + chunk] = (le & lt).any(axis=1)
    mask[idx] = ~dominated
    return mask


def pareto_mask(df: pd.DataFrame, objectives: Any = DEFAULT_OBJECTIVES) -> np.ndarray:
    """Boolean array, True for the rows of `df` that no other row dominates on `objectives`.

    `objectives` is a sequence of (column, "min"|"max") (see normalize_objectives for the other
    spellings accepted). Rows with NaN in any objective are False.
    """
    return pareto_mask_array(_cost_matrix(df, normalize_objectives(objectives)))


def pareto_mask_by(df: pd.DataFrame, *, objectives: Any = DEFAULT_OBJECTIVES,
                   by: str | Sequence[str] = "block_shape") -> np.ndarray:
    """Like pareto_mask, but each group of `by` (e.g. each block shape) gets its own front.

    Rows whose group key is NaN form their own group.
    """
    objs = normalize_objectives(objectives)
    costs = _cost_matrix(df, objs)
    mask = np.zeros(len(df), dtype=bool)
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"group columns {missing} are not columns of the points table")
    groups = df.reset_index(drop=True).groupby(keys, dropna=False, sort=False).indices
    for positions in groups.values():
        positions = np.asarray(positions)
        mask[positions] = pareto_mask_array(costs[positions])
    return mask


def pareto_front(df: pd.DataFrame, *, objectives: Any = DEFAULT_OBJECTIVES,
                 by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The non-dominated rows of `df` (per group of `by` when given), sorted by the first
    objective (best first) and, per group, grouped together."""
    objs = normalize_objectives(objectives)
    mask = pareto_mask(df, objs) if by is None else pareto_mask_by(df, objectives=objs, by=by)
    front = df.loc[mask]
    first, direction = objs[0]
    sort_cols = ([by] if isinstance(by, str) else list(by or [])) + [first]
    ascending = [True] * (len(sort_cols) - 1) + [direction == "min"]
    return front.sort_values(sort_cols, ascending=ascending, kind="mergesort")


def fronts_by(df: pd.DataFrame, *, objectives: Any = DEFAULT_OBJECTIVES,
              by: str | Sequence[str] = "block_shape") -> dict[Any, pd.DataFrame]:
    """{group key: that group's own Pareto front}, each sorted by the first objective."""
    front = pareto_front(df, objectives=objectives, by=by)
    return {key: group for key, group in front.groupby(by, dropna=False, sort=True)}


# --- helpers shared by plots.py and report.py: which columns describe the accelerator -------

#: Study hardware keys whose points.csv column has another name (study key -> column). With
#: `points_column`, the one home of that rename: the sweep writes points.csv with it, and
#: pareto, plots and report read it.
HW_COLUMNS = {"pe_array": "array"}


def points_column(key: str) -> str:
    """The points.csv column of a study hardware key: `pe_array` -> `array`, a swept buffer
    `buffers_kib.NAME` -> `buffer_NAME_kib`, any other key as it is."""
    if key.startswith("buffers_kib."):
        return f"buffer_{key.split('.', 1)[1]}_kib"
    return HW_COLUMNS.get(key, key)


#: Columns that describe the accelerator (or the workload it runs) rather than the pruning or a
#: result; the points of one accelerator choice share all of them (a study key such as
#: `pe_array` is accepted as a column too). `sparse_strategy` is not among them because the
#: dense baseline is stored with sparse_strategy "dense".
ACCELERATOR_COLUMNS = ("model", "seq_len", "batch", "board", "array", "pe_array", "dataflow",
                       "clock_mhz", "precision", "double_buffering", "engine")
_ACCELERATOR_PREFIXES = ("buffers_kib", "hw.", "hardware.")


def _is_buffer_column(name: str) -> bool:
    # a swept buffer size `buffer_<name>_kib` (study key buffers_kib.<name>, see points_column)
    return name.startswith("buffer_") and name.endswith("_kib")


def accelerator_columns(points: pd.DataFrame, study: Mapping | None = None) -> list[str]:
    """The columns of `points` that identify one accelerator choice (see ACCELERATOR_COLUMNS,
    plus swept buffer sizes `buffer_<name>_kib` / `buffers_kib.<name>`).

    With the study given, its swept hardware keys are added (under the study's name or the
    points.csv name: pe_array -> array, buffers_kib.NAME -> buffer_NAME_kib).
    """
    names = [c for c in points.columns if c in ACCELERATOR_COLUMNS
             or str(c).startswith(_ACCELERATOR_PREFIXES) or _is_buffer_column(str(c))]
    hardware = (study or {}).get("hardware") if isinstance(study, Mapping) else None
    if isinstance(hardware, Mapping):
        for key, value in hardware.items():
            if key == "buffers_kib" and isinstance(value, Mapping):
                keys = [f"buffers_kib.{k}" for k in value]
                extra = keys + [points_column(k) for k in keys]
            else:
                extra = [key, points_column(key)]
            names += [c for c in dict.fromkeys(extra) if c in points.columns and c not in names
                      and c != "sparse_strategy"]
    return names


def is_dense(points: pd.DataFrame) -> np.ndarray:
    """True for the dense-baseline rows (block_shape "dense", or no pruning at all)."""
    shape = points.get("block_shape", pd.Series("", index=points.index)).astype(str).str.lower()
    ratio = pd.to_numeric(points.get("prune_ratio", pd.Series(np.nan, index=points.index)),
                          errors="coerce")
    return ((shape == "dense") | (ratio == 0)).to_numpy()


def with_speedup(points: pd.DataFrame, study: Mapping | None = None) -> pd.DataFrame:
    """A copy of `points` with `dense_latency_ms`, `dense_energy_mj`, `speedup` (dense latency /
    latency on the same accelerator) and `ideal_speedup` (= compression).

    "Same accelerator" means equal values in every accelerator column (accelerator_columns).
    Rows with no dense baseline on their accelerator get NaN. When several dense rows share an
    accelerator (e.g. one per task, same latency), their median is used.
    """
    out = points.copy()
    keys = accelerator_columns(points, study)
    dense = out.loc[is_dense(out)]
    nan = pd.Series(np.nan, index=out.index)
    lat = pd.to_numeric(out.get("latency_ms", nan), errors="coerce")
    en = pd.to_numeric(out.get("energy_mj", nan), errors="coerce")
    out["dense_latency_ms"] = np.nan
    out["dense_energy_mj"] = np.nan
    if len(dense) and "latency_ms" in out:
        if keys:
            base = (dense.assign(_lat=lat.loc[dense.index], _en=en.loc[dense.index])
                    .groupby(keys, dropna=False)[["_lat", "_en"]].median())
            # dropna=False groups keep NaN keys; join on a string form so NaN matches NaN
            tag = lambda frame: frame[keys].astype(str).agg("|".join, axis=1)  # noqa: E731
            base.index = tag(base.reset_index())
            row_tags = tag(out)
            out["dense_latency_ms"] = row_tags.map(base["_lat"]).to_numpy()
            out["dense_energy_mj"] = row_tags.map(base["_en"]).to_numpy()
        else:
            out["dense_latency_ms"] = float(lat.loc[dense.index].median())
            out["dense_energy_mj"] = float(en.loc[dense.index].median())
    out["speedup"] = out["dense_latency_ms"] / lat
    comp = pd.to_numeric(out.get("compression", nan), errors="coerce")
    out["ideal_speedup"] = comp
    return out
