"""The study's figures: Pareto fronts (pareto.png/svg), achieved vs ideal speedup (speedup.png/svg).

What is drawn:
* pareto: one row per GLUE task, two panels: latency (ms) vs accuracy and energy (mJ) vs accuracy.
  Colour = block shape (the same colour for a shape in every figure of every study), marker shape
  = accuracy fidelity (oneshot / retrain / rgl), hollow markers = surrogate (estimated) accuracy,
  a black star = the dense baseline, a grey cross = a design that does not fit the board. The
  step line is each panel's own two-objective front (lower x, higher accuracy) over the designs
  that fit; a black ring marks the points of the study's Pareto set over all its objectives (the
  rows of the report's table), and a dotted line the accuracy floor of the study's constraint.
  A thin vertical bar through a point (drawn under the markers, in the point's colour) is its 95%
  dev-set bootstrap interval (points.csv `accuracy_low`/`accuracy_high`; none where unknown); in
  a study with accuracy.seeds the envelope of the seeds' intervals, and the legend says so.
  A latency-aware point (points.csv `allocation`, pruning.allocation) is a filled plus in its
  block shape's colour with a black edge, labelled with its speedup target ("2x"), beside the
  uniform points; the legend names both allocations when the table has latency-aware points.
  A PE-balanced point (points.csv `balanced` true) has a thin dark square outline around it.
* speedup: one panel per sparse strategy; x = compression (dense weights / kept weights), y =
  latency of the dense baseline on the same accelerator / latency. One line per block shape: the
  median over the accelerator choices (PE array, dataflow, clock, ...), with a band from the
  slowest to the fastest of them. The dashed diagonal is the ideal speedup (= compression).

What is ignored: surrogate uncertainty (no error bars for it), points with NaN latency or accuracy (not
drawn). matplotlib is imported inside the functions, and the figures are bare
matplotlib.figure.Figure objects (rendered by Agg, never registered with pyplot), so importing
this module is cheap, nothing opens a window, and a notebook's backend is left alone.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


from codesign.accuracy.recipe import FIDELITIES
from codesign.pareto import (DEFAULT_OBJECTIVES, accelerator_columns, is_dense,
                             normalize_objectives, pareto_mask, pareto_mask_array,
                             with_speedup)
from codesign.plot_style import (fits as fits_mask, figure_title, require_columns, shape_colors,
                                 shape_order, source_label, task_label, truthy)
from codesign.report_noise import seed_count

_FIDELITY_MARKERS = {"oneshot": "o", "calibrated": "v", "retrain": "s", "rgl": "D"}
_OTHER_MARKER = "^"
_FIDELITY_LABELS = {"oneshot": "one-shot prune", "calibrated": "calibrated one-shot (no labels)",
                    "retrain": "pruned + retrained",
                    "rgl": "RGL (group lasso) + retrain"}
_STRATEGY_STYLES = {"tile-skip": "-", "compact": "--"}
_INTERVAL_WIDTH = 0.8  # points: thin, so the bars never hide the markers (drawn beneath them)
#: gid of each panel's interval bars (a LineCollection; also the group id in the SVG)
INTERVAL_GID = "accuracy-interval"
LATENCY_AWARE = "latency-aware"  # points.csv `allocation` of a latency-aware point
_AWARE_MARKER = "P"
#: gid of each panel's latency-aware points (PathCollections; also the group id in the SVG)
AWARE_GID = "latency-aware-points"
#: gid of each panel's square outlines around PE-balanced points (points.csv `balanced`)
BALANCED_GID = "balanced-points"


def _accuracy_floor(points: pd.DataFrame, study: Mapping | None) -> float | None:
    """Dense accuracy minus the study's max_accuracy_drop (points = 100 x metric), if any."""
    drop = ((study or {}).get("constraints") or {}).get("max_accuracy_drop") \
        if isinstance(study, Mapping) else None
    if drop is None or "accuracy_dense" not in points:
        return None
    dense = pd.to_numeric(points["accuracy_dense"], errors="coerce").dropna()
    if dense.empty:
        return None
    return float(dense.median()) - float(drop) / 100.0


def study_pareto_mask(points: pd.DataFrame, objectives: Any = DEFAULT_OBJECTIVES) -> np.ndarray:
    """The study's Pareto set: the stored `pareto` column if it marks any row, else the
    non-dominated rows over `objectives` among the designs that fit the board."""
    if "pareto" in points and truthy(points["pareto"]).any():
        return truthy(points["pareto"])
    objs = [o for o in normalize_objectives(objectives) if o[0] in points]
    mask = np.zeros(len(points), dtype=bool)
    if not objs:
        return mask
    fits = fits_mask(points)
    mask[fits] = pareto_mask(points.loc[fits], objs)
    return mask


def _legend_handles(shapes: list[str], *, colors: dict[str, str], fidelities: list[str],
                    extras: dict[str, bool]) -> tuple[list, list[str]]:
    from matplotlib.lines import Line2D

    handles: list = []
    labels: list[str] = []

    def header(text: str) -> None:
        handles.append(Line2D([], [], linestyle="none", marker=None))
        labels.append(text)

    header("$\\bf{Block\\ shape}$ (rows x cols)")
    for shape in shapes:
        if shape.lower() == "dense":
            continue
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=8,
                              markerfacecolor=colors[shape], markeredgecolor=colors[shape]))
        labels.append(shape)
    if fidelities:
        header("$\\bf{Accuracy\\ fidelity}$ (marker)")
        for fid in fidelities:
            handles.append(Line2D([], [], linestyle="none",
                                  marker=_FIDELITY_MARKERS.get(fid, _OTHER_MARKER),
                                  markersize=7, color="0.35"))
            labels.append(_FIDELITY_LABELS.get(fid, fid))
    header("$\\bf{Other\\ marks}$")
    if extras.get("dense"):
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=14,
                              markerfacecolor="black", markeredgecolor="white"))
        labels.append("dense baseline (no pruning)")
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7, color="0.35"))
    labels.append("filled: measured accuracy")
    if extras.get("surrogate"):
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7,
                              markerfacecolor="none", markeredgecolor="0.35"))
        labels.append("hollow: surrogate (estimated) accuracy")
    if extras.get("nofit"):
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7, color="0.6"))
        labels.append("does not fit the board")
    handles.append(Line2D([], [], color="0.2", linewidth=1.6, drawstyle="steps-post"))
    labels.append("front of this panel (fits board)")
    if extras.get("pareto"):
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11,
                              markerfacecolor="none", markeredgecolor="black",
                              markeredgewidth=1.4))
        labels.append("in the study's Pareto set (report table)")
    if extras.get("floor"):
        handles.append(Line2D([], [], color="0.4", linestyle=":", linewidth=1.2))
        labels.append("accuracy floor (constraint)")
    if extras.get("interval"):
        handles.append(Line2D([], [], linestyle="none", marker="|", markersize=14,
                              color="0.35", markeredgewidth=_INTERVAL_WIDTH))
        seeds = int(extras.get("seeds") or 0)  # a seeded study: means and envelopes
        labels.append("bar: 95% bootstrap interval (dev set)" if not seeds else
                      f"bar: envelope of the {seeds} seeds' 95% bootstrap intervals")
    if extras.get("balanced"):
        handles.append(Line2D([], [], linestyle="none", marker="s", markersize=10,
                              markerfacecolor="none", markeredgecolor="0.1"))
        labels.append("square outline: PE-balanced blocks")
    if extras.get("aware"):
        header("$\\bf{Allocation}$")
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7, color="0.35"))
        labels.append("uniform: the same fraction of every matrix (marker: fidelity)")
        handles.append(Line2D([], [], linestyle="none", marker=_AWARE_MARKER, markersize=9,
                              markerfacecolor="0.35", markeredgecolor="black"))
        labels.append("latency-aware: blocks chosen for a speedup target (label)")
    return handles, labels


def _draw_intervals(ax, data: pd.DataFrame, xs: np.ndarray, ok: np.ndarray, *,
                    colors: dict[str, str], gid: str) -> bool:
    """Thin vertical bars from accuracy_low to accuracy_high at each drawn point with a known
    interval, beneath the markers; returns whether any was drawn."""
    if "accuracy_low" not in data or "accuracy_high" not in data:
        return False
    low = pd.to_numeric(data["accuracy_low"], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(data["accuracy_high"], errors="coerce").to_numpy(dtype=float)
    sel = ok & np.isfinite(low) & np.isfinite(high)
    if not sel.any():
        return False
    shapes = data["block_shape"].astype(str).to_numpy()
    tint = np.where(fits_mask(data), [colors.get(s, "0.5") for s in shapes], "0.5")
    ax.vlines(xs[sel], low[sel], high[sel], colors=list(tint[sel]), linewidths=_INTERVAL_WIDTH,
              alpha=0.7, zorder=2.2, gid=gid)
    return True


def _draw_aware(ax, data: pd.DataFrame, xs: np.ndarray, ys: np.ndarray, sel: np.ndarray, *,
                colors: dict[str, str], gid: str) -> bool:
    """The latency-aware points of a panel (filled plus, black edge, block shape's colour),
    each labelled with its speedup target; returns whether any was drawn."""
    if not sel.any():
        return False
    shapes = data["block_shape"].astype(str).to_numpy()
    targets = pd.to_numeric(data.get("speedup_target", pd.Series(np.nan, index=data.index)),
                            errors="coerce").to_numpy(dtype=float)
    for shape in shape_order(shapes[sel]):
        part = sel & (shapes == shape)
        ax.scatter(xs[part], ys[part], s=70, marker=_AWARE_MARKER, facecolors=colors[shape],
                   edgecolors="black", linewidths=0.7, alpha=0.95, zorder=3.5,
                   gid=f"{AWARE_GID}-{gid}")
    for i in np.flatnonzero(sel & np.isfinite(targets)):
        ax.annotate(f"{targets[i]:g}x", (xs[i], ys[i]), xytext=(4, 4),
                    textcoords="offset points", fontsize=7, color="0.25", zorder=6)
    return True


def _draw_panel(ax, data: pd.DataFrame, *, x: str, colors: dict[str, str], in_set: np.ndarray,
                floor: float | None, gid: str = INTERVAL_GID) -> dict[str, bool]:
    """Scatter one task's points on (x, accuracy); returns which legend extras were used."""
    extras = {"dense": False, "surrogate": False, "nofit": False, "pareto": False,
              "floor": False, "interval": False, "aware": False}
    xs = pd.to_numeric(data[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(data["accuracy"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    fits = fits_mask(data)
    dense = is_dense(data)
    shapes = data["block_shape"].astype(str).to_numpy()
    fid = (data["accuracy_fidelity"].astype(str).to_numpy() if "accuracy_fidelity" in data
           else np.array(["?"] * len(data)))
    surrogate = (data["accuracy_source"].astype(str).str.lower().eq("surrogate").to_numpy()
                 if "accuracy_source" in data else np.zeros(len(data), dtype=bool))

    extras["interval"] = _draw_intervals(ax, data, xs, ok, colors=colors, gid=gid)
    nofit = ok & ~fits
    if nofit.any():
        ax.scatter(xs[nofit], ys[nofit], marker="x", s=30, color="0.5", linewidths=1.0,
                   zorder=6)
        extras["nofit"] = True
    aware = (data["allocation"].astype(str).eq(LATENCY_AWARE).to_numpy()
             if "allocation" in data else np.zeros(len(data), dtype=bool))
    extras["aware"] = _draw_aware(ax, data, xs, ys, ok & fits & aware, colors=colors, gid=gid)
    bal = ok & fits & (data["balanced"].astype(str).str.lower().eq("true").to_numpy()
                       if "balanced" in data else False)
    if bal.any():
        ax.scatter(xs[bal], ys[bal], s=100, marker="s", facecolors="none", edgecolors="0.1",
                   linewidths=0.9, zorder=3.6, gid=f"{BALANCED_GID}-{gid}")
        extras["balanced"] = True
    draw = ok & fits & ~dense & ~aware
    for shape in shape_order(shapes[draw]):
        for f in sorted(set(fid[draw & (shapes == shape)])):
            for hollow in (False, True):
                sel = draw & (shapes == shape) & (fid == f) & (surrogate == hollow)
                if not sel.any():
                    continue
                ax.scatter(xs[sel], ys[sel], s=42, marker=_FIDELITY_MARKERS.get(f, _OTHER_MARKER),
                           facecolors="none" if hollow else colors[shape],
                           edgecolors=colors[shape], linewidths=1.4 if hollow else 0.5,
                           alpha=0.9, zorder=3)
                extras["surrogate"] |= hollow
    base = ok & dense
    if base.any():
        ax.scatter(xs[base], ys[base], marker="*", s=260, color="black", edgecolors="white",
                   linewidths=0.8, zorder=5)
        extras["dense"] = True
    ring = ok & in_set
    if ring.any():
        ax.scatter(xs[ring], ys[ring], s=130, facecolors="none", edgecolors="black",
                   linewidths=1.2, zorder=4)
        extras["pareto"] = True

    cand = np.flatnonzero(ok & fits)
    if cand.size:
        front = cand[pareto_mask_array(np.column_stack([xs[cand], -ys[cand]]))]
        front = front[np.lexsort((-ys[front], xs[front]))]
        ax.plot(xs[front], ys[front], drawstyle="steps-post", color="0.2", linewidth=1.6,
                zorder=2.5)
    if floor is not None and ok.any():
        lo, hi = float(np.min(ys[ok])), float(np.max(ys[ok]))
        if floor >= lo - 0.25 * max(hi - lo, 0.01):
            ax.axhline(floor, color="0.4", linestyle=":", linewidth=1.2, zorder=1)
            extras["floor"] = True
        else:  # a loose constraint would squash every point into a line at the top
            ax.text(0.99, 0.02, f"accuracy floor {floor:.3g} (constraint) is below every point",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.4")
    if not ok.any():
        ax.text(0.5, 0.5, f"no design point has both {x} and an accuracy",
                transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.grid(True, alpha=0.3)
    return extras


def pareto_figure(points: pd.DataFrame, *, objectives: Any = DEFAULT_OBJECTIVES,
                  study: Mapping | None = None):
    """The Pareto figure (a matplotlib Figure, not saved): see the module docstring."""
    from matplotlib.figure import Figure

    require_columns(points, ("block_shape", "accuracy"))
    xs = [c for c in ("latency_ms", "energy_mj") if c in points]
    if not xs:
        raise ValueError("points table has neither latency_ms nor energy_mj: nothing to plot")
    tasks = (list(dict.fromkeys(points["task"].astype(str))) if "task" in points else [""])
    colors = shape_colors(shape_order(points["block_shape"].astype(str)))
    in_set_all = study_pareto_mask(points, objectives)
    fig = Figure(figsize=(6.2 * len(xs), 4.6 * len(tasks)))
    axes = fig.subplots(len(tasks), len(xs), squeeze=False)
    extras: dict[str, bool] = {}
    hw = source_label(points)
    x_titles = {"latency_ms": "Latency per inference (ms)",
                "energy_mj": "Energy per inference (mJ)"}
    for r, task in enumerate(tasks):
        sel = (points["task"].astype(str) == task).to_numpy() if "task" in points \
            else np.ones(len(points), dtype=bool)
        data = points.loc[sel]
        metric = (data["accuracy_metric"].dropna().astype(str).iloc[0]
                  if "accuracy_metric" in data and data["accuracy_metric"].notna().any() else None)
        floor = _accuracy_floor(data, study)
        for c, x in enumerate(xs):
            ax = axes[r][c]
            drawn = _draw_panel(ax, data, x=x, colors=colors, in_set=in_set_all[sel],
                                floor=floor, gid=f"{INTERVAL_GID}-{r}-{c}")
            for k, v in drawn.items():
                extras[k] = extras.get(k, False) or v
            ax.set_xlabel(x_titles[x] + (f"  [{hw}]" if hw else ""))
            ax.set_ylabel(task_label(task, metric) if task else "accuracy")
            ax.set_title(f"{x_titles[x].split(' per')[0]} vs accuracy: up-left is better",
                         fontsize=10)
    fids = [f for f in FIDELITIES if "accuracy_fidelity" in points
            and (points["accuracy_fidelity"].astype(str) == f).any()]
    fids += sorted({str(f) for f in points.get("accuracy_fidelity", pd.Series(dtype=str))
                    .dropna() if str(f) not in _FIDELITY_MARKERS and str(f) != "dense"})
    extras["seeds"] = seed_count(points)  # 0 without accuracy.seeds: the legend of before
    handles, labels = _legend_handles(list(colors), colors=colors, fidelities=fids,
                                      extras=extras)
    leg = fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                     frameon=False, fontsize=9, handletextpad=0.6)
    for text, handle in zip(leg.get_texts(), handles):
        if handle.get_marker() in (None, "None", "") and handle.get_linestyle() in ("None", "none"):
            text.set_x(-20)  # headers flush left
    title = figure_title(points, study, "Pareto fronts")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def speedup_figure(points: pd.DataFrame, *, study: Mapping | None = None):
    """Achieved vs ideal latency speedup per block shape and sparse strategy (a Figure)."""
    from matplotlib.figure import Figure

    require_columns(points, ("block_shape", "latency_ms", "compression"))
    data = with_speedup(points, study)
    sparse = data.loc[~is_dense(data) & np.isfinite(data["speedup"].to_numpy(dtype=float))]
    strategies = (list(dict.fromkeys(sparse["sparse_strategy"].astype(str)))
                  if "sparse_strategy" in sparse else ["sparse"])
    known = list(_STRATEGY_STYLES)
    strategies = sorted(strategies, key=lambda s: (known.index(s) if s in known else len(known),
                                                   s)) or ["sparse"]
    colors = shape_colors(shape_order(points["block_shape"].astype(str)))
    fig = Figure(figsize=(5.6 * len(strategies) + 1.8, 4.6))
    axes = fig.subplots(1, len(strategies), squeeze=False, sharey=True)
    comp_all = pd.to_numeric(data["compression"], errors="coerce")
    top = float(np.nanmax(comp_all)) if comp_all.notna().any() else 1.0
    n_acc = 0
    keys = accelerator_columns(points, study)
    if keys:
        n_acc = len(data.loc[~is_dense(data), keys].drop_duplicates())
    from matplotlib.lines import Line2D
    handles: dict[str, Any] = {}
    banded = False
    for ax, strategy in zip(axes[0], strategies):
        part = (sparse.loc[sparse["sparse_strategy"].astype(str) == strategy]
                if "sparse_strategy" in sparse else sparse)
        grid = np.linspace(1.0, max(top, 1.0) * 1.05, 50)
        ax.plot(grid, grid, "k--", linewidth=1.2, zorder=1)
        ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1.0, zorder=1)
        for shape in shape_order(part["block_shape"].astype(str)):
            rows = part.loc[part["block_shape"].astype(str) == shape]
            stats = rows.groupby("compression")["speedup"].agg(["median", "min", "max"])
            stats = stats.sort_index()
            xs = np.concatenate([[1.0], stats.index.to_numpy(dtype=float)])
            med = np.concatenate([[1.0], stats["median"].to_numpy()])
            ax.plot(xs, med, "-o", color=colors[shape], linewidth=1.8, markersize=5, zorder=3)
            if (stats["max"] > stats["min"] * 1.001).any():
                banded = True
                ax.fill_between(xs, np.concatenate([[1.0], stats["min"]]),
                                np.concatenate([[1.0], stats["max"]]), color=colors[shape],
                                alpha=0.15, linewidth=0, zorder=2)
            handles[shape] = Line2D([], [], color=colors[shape], marker="o", linewidth=1.8)
        if part.empty:
            ax.text(0.5, 0.5, "no sparse point has a dense\nbaseline on the same accelerator",
                    ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_title(f"sparse strategy: {strategy}", fontsize=10)
        ax.set_xlabel("Compression (dense weights / kept weights, x)")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0.9, max(top, 1.0) * 1.05)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("Latency speedup over dense, same accelerator (x)")
    order = [s for s in shape_order(list(handles))]
    legend_handles = [handles[s] for s in order] + [
        Line2D([], [], color="black", linestyle="--"),
        Line2D([], [], color="0.5", linestyle=":")]
    legend_labels = order + ["ideal: speedup = compression", "dense (1x)"]
    if banded:
        legend_handles.append(Line2D([], [], color="0.6", linewidth=8, alpha=0.3))
        legend_labels.append(f"band: slowest..fastest of {n_acc} accelerator choices")
    title = ("Block shape (rows x cols)\nline = median over "
             f"{n_acc} accelerator choice{'s' if n_acc != 1 else ''}")
    fig.legend(legend_handles, legend_labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False, fontsize=9, title=title,
               title_fontsize=9)
    hw = source_label(points)
    fig.suptitle(figure_title(points, study, "Achieved vs ideal speedup")
                 + (f"\nlatency {hw}" if hw else ""), fontsize=12)
    fig.tight_layout()
    return fig


def plot_study(points: pd.DataFrame, out_dir: str | Path, *,
               objectives: Any = DEFAULT_OBJECTIVES, study: Mapping | None = None,
               formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write pareto.{png,svg} and speedup.{png,svg} into `out_dir`; return their paths.

    `study` (the validated study as plain data, optional) adds its name, board and accuracy
    floor to the figures; when it is not given, out_dir/study.yaml is read if it is there (the
    sweep writes it before the figures).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if study is None and (out / "study.yaml").is_file():
        import yaml

        try:
            loaded = yaml.safe_load((out / "study.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            loaded = None  # the figures do not need it; the report/CLI name a broken file
        study = loaded if isinstance(loaded, Mapping) else None
    written: list[Path] = []
    for name, make in (("pareto", lambda: pareto_figure(points, objectives=objectives,
                                                         study=study)),
                       ("speedup", lambda: speedup_figure(points, study=study))):
        fig = make()  # a bare Figure: drawn by Agg, never registered with pyplot, no window
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=dpi, bbox_inches="tight",
                        metadata={"Date": None} if fmt == "svg" else None)
            written.append(path)
    return written


def load_points(path: str | Path) -> pd.DataFrame:
    """points.csv as a frame with `fits`/`pareto` as booleans and `provenance` left as text."""
    frame = pd.read_csv(path)
    for col in ("fits", "pareto", "feasible"):
        if col in frame and frame[col].dtype != bool:
            frame[col] = truthy(frame[col])
    if "provenance" in frame:
        frame["provenance"] = frame["provenance"].astype(str)
    return frame

