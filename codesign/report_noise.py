"""The report's sentences about dev-set noise: accuracies with their intervals, designs that are
indistinguishable at this dev-set size, and constraints a straddling interval leaves undecided.

What is modelled: the 95% dev-set bootstrap intervals of points.csv (`accuracy_low`/`_high`,
`accuracy_drop_low`/`_high`; see codesign.sweep.records). Two designs whose accuracy intervals
overlap are called indistinguishable (codesign.pareto.intervals_overlap), never ranked; a point
whose drop interval has values on both sides of the study's `max_accuracy_drop` leaves the
constraint undecided (codesign.pareto.interval_straddles). A seeded study (`accuracy_seeds`
column, codesign.sweep.seeds) has means over its seeds and intervals that envelope the seeds'
bootstrap intervals, so there they cover the training noise too; the header says so. What is
ignored: without seeds, the noise of training, which a dev-set bootstrap cannot see;
feasibility itself stays decided on the point estimates (THE rule,
codesign.pareto.constraint_values).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from codesign.pareto import drop_interval, interval_straddles, intervals_overlap, is_dense
from codesign.plot_style import fits as _fits


def has_intervals(points: pd.DataFrame) -> bool:
    """Whether the table carries accuracy intervals (points.csv written since they exist)."""
    return "accuracy_low" in points and "accuracy_high" in points


def seed_count(points: pd.DataFrame) -> int:
    """How many seeds the accuracies are means over (the `accuracy_seeds` column of a seeded
    study, codesign.sweep.seeds); 0 for a table without it (one measurement per point)."""
    if "accuracy_seeds" not in points:
        return 0
    counts = pd.to_numeric(points["accuracy_seeds"], errors="coerce").dropna()
    return int(counts.max()) if len(counts) else 0


def header_lines(points: pd.DataFrame) -> list[str]:
    """The report header's line on accuracy intervals (none for a table without them); for a
    seeded study it says the accuracies are means over the seeds and the intervals span the
    seeds' bootstrap intervals."""
    if not has_intervals(points):
        return []
    acc = pd.to_numeric(points["accuracy"], errors="coerce").notna()
    known = (acc & pd.to_numeric(points["accuracy_low"], errors="coerce").notna()).sum()
    unknown = int(acc.sum() - known)
    seeds = seed_count(points)
    lead = ("Accuracy intervals: 95% percentile bootstrap over the dev examples" if not seeds
            else f"Accuracy: means over {seeds} training seeds; intervals: each spans the "
            "seeds' 95% percentile bootstrap intervals over the dev examples (their lowest low "
            "to their highest high: dev-set and training noise together)")
    return [f"- {lead}, for {known} "
            f"of the {int(acc.sum())} points with an accuracy"
            + (f" ({unknown} measured before intervals were recorded: unknown)" if unknown
               else "")
            + "; designs whose intervals overlap are indistinguishable at this dev-set size"
            + ("" if not seeds else " and these seeds") + "."]


def interval_of(row: Mapping) -> tuple[float, float]:
    """(accuracy_low, accuracy_high) of a row as floats (NaN when unknown)."""
    return (float(pd.to_numeric(row.get("accuracy_low"), errors="coerce")),
            float(pd.to_numeric(row.get("accuracy_high"), errors="coerce")))


def accuracy_text(row: Mapping) -> str:
    """A point's accuracy as the report writes it: `0.789 [0.762, 0.815]` (3 decimals: the
    resolution of a dev set of ~1000 examples), or `0.789 [interval unknown]`."""
    acc = float(pd.to_numeric(row.get("accuracy"), errors="coerce"))
    if not np.isfinite(acc):
        return "n/a"
    low, high = interval_of(row)
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{acc:.3f} [interval unknown]"
    return f"{acc:.3f} [{low:.3f}, {high:.3f}]"


def _is_dense_row(row: Mapping) -> bool:
    return str(row.get("block_shape")).lower() == "dense" or row.get("prune_ratio") == 0


def drop_of(row: Mapping) -> float:
    """The accuracy drop of a row in points, 100 x (dense - accuracy)."""
    return 100.0 * (float(pd.to_numeric(row.get("accuracy_dense"), errors="coerce"))
                    - float(pd.to_numeric(row.get("accuracy"), errors="coerce")))


def drop_interval_of(row: Mapping) -> tuple[float, float]:
    """The drop interval (points) of a row: its stored columns, else derived (drop_interval)."""
    if "accuracy_drop_low" in row and "accuracy_drop_high" in row:
        return (float(pd.to_numeric(row["accuracy_drop_low"], errors="coerce")),
                float(pd.to_numeric(row["accuracy_drop_high"], errors="coerce")))
    return drop_interval(float(pd.to_numeric(row.get("accuracy_dense"), errors="coerce")),
                         *interval_of(row), dense_model=_is_dense_row(row))


def _straddling(data: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Rows that fit the board but miss the accuracy limit by their point estimate only: their
    drop interval reaches down to the limit."""
    rows = data.loc[_fits(data)]
    keep = [drop_of(r) > limit and interval_straddles(*drop_interval_of(r), limit)
            for r in rows.to_dict("records")]
    return rows.loc[np.asarray(keep, dtype=bool)] if len(rows) else rows


def constraint_lines(data: pd.DataFrame, fastest: pd.Series | None, limit: float | None,
                     describe: Callable[[pd.Series, str], str]) -> list[str]:
    """Where the accuracy constraint is decided by a point whose drop interval straddles the
    limit: the chosen design (`fastest`), and the faster designs (all, with no `fastest`) that
    miss the limit by their point estimate only. `describe(row, what)` writes a design line."""
    if limit is None:
        return []
    lines = []
    if fastest is not None and not _is_dense_row(fastest):
        low, high = drop_interval_of(fastest)
        if interval_straddles(low, high, limit):
            lines.append(f"Its accuracy drop, {drop_of(fastest):.2f} [{low:.2f}, {high:.2f}] "
                         f"points, straddles the limit of {limit:g} point(s): at this dev-set "
                         "size it is not decided that it meets the constraint.")
    pool = data
    if fastest is not None:
        pool = data.loc[data["latency_ms"].to_numpy(dtype=float) < float(fastest["latency_ms"])]
    undecided = _straddling(pool, limit)
    if len(undecided):
        first = undecided.sort_values("latency_ms", kind="mergesort").iloc[0]
        faster = "faster " if fastest is not None else ""
        lines.append(describe(first, f"{len(undecided)} {faster}design(s) miss the accuracy "
                              "limit by their point estimate only (their drop interval reaches "
                              f"down to {limit:g} point(s)), so the constraint is not decided for "
                              "them at this dev-set size; the fastest of them"))
    return lines


def versus_dense_lines(data: pd.DataFrame, row: pd.Series, acc_name: str) -> list[str]:
    """Whether a sparse design's accuracy is distinguishable from the dense model's."""
    dense = data.loc[is_dense(data)]
    if _is_dense_row(row) or dense.empty:
        return []
    base = dense.iloc[0]
    overlap = intervals_overlap(interval_of(row), interval_of(base))
    ref = f"the dense model's ({accuracy_text(base)})"
    if overlap is None:
        return [f"Whether its {acc_name} differs from {ref} is unknown: one of them was "
                "measured without an interval."]
    if overlap:
        return [f"At this dev-set size its {acc_name} is indistinguishable from {ref}: the "
                "intervals overlap."]
    side = "below" if float(row["accuracy"]) < float(base["accuracy"]) else "above"
    return [f"Its {acc_name} is {side} {ref} beyond the dev-set noise: the intervals do not "
            "overlap."]


def ties_with_best_lines(valid: pd.DataFrame, best: pd.Series) -> list[str]:
    """How many other points are indistinguishable from the most accurate one."""
    others = [r for name, r in valid.iterrows() if name != best.name]
    if not others:
        return []
    ties = sum(bool(intervals_overlap(interval_of(best), interval_of(r))) for r in others)
    return [f"{ties} of the other {len(others)} point(s) are indistinguishable from it at this "
            "dev-set size (their intervals overlap its interval)."]


def pareto_lines(points: pd.DataFrame, in_set: np.ndarray,
                 design_text: Callable[[Mapping], str]) -> list[str]:
    """Which points of the Pareto set lead a faster point of the set in accuracy only within the
    dev-set noise (overlapping intervals: indistinguishable at this dev-set size)."""
    rows = points.loc[in_set].sort_values("latency_ms", kind="mergesort").to_dict("records")
    if len(rows) < 2:
        return []
    unknown = sum(not np.isfinite(interval_of(r)).all() for r in rows)
    ties = []
    for i, row in enumerate(rows):
        for faster in rows[:i]:
            if row["accuracy"] > faster["accuracy"] and \
                    intervals_overlap(interval_of(row), interval_of(faster)):
                ties.append((row, faster))
                break
    note = f" ({unknown} of them measured without an interval)" if unknown else ""
    if not ties:
        return [f"No point of the Pareto set leads a faster point of the set in accuracy by less "
                f"than the dev-set noise{note}."]
    row, faster = ties[0]
    return [f"{len(ties)} of the {len(rows)} points of the Pareto set lead a faster point of the "
            "set in accuracy only within the dev-set noise: their intervals overlap, so they are "
            f"indistinguishable at this dev-set size{note}; e.g. {design_text(row)} "
            f"({accuracy_text(row)}) and the faster {design_text(faster)} "
            f"({accuracy_text(faster)})."]
