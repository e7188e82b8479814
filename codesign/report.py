"""report.md of a study: what was asked, the Pareto set as a table, and an answer built from data.

What is written: the study's name and question, how many design points and where their figures
come from, the objectives and constraints, a few generated lines answering the question (the
fastest and the most frugal design that meets the constraints, the speedup they buy over the dense
baseline on the same accelerator, which block shapes make up the Pareto set, and how far the
achieved speedup falls short of the ideal speedup = compression; for a study that sweeps
precision, which precision x block x compression combinations are on the front and how the
narrowest-weight dense design fares against the widest-weight 2x-pruned one,
codesign.report_precision), then the Pareto set as a
markdown table and links to the figures. Every figure carries its source: latency and energy
"simulated: <engine>/<version>" (the hw_source column), accuracy "measured" or "surrogate" with
its fidelity.

Noise: accuracies carry their 95% dev-set bootstrap interval when points.csv has one
(`accuracy_low`/`accuracy_high`, written `0.789 [0.762, 0.815]`; "[interval unknown]" for points
measured before intervals were recorded; tables without the columns print as before). The answer
never calls one design more accurate than another when their intervals overlap (it says they are
indistinguishable at this dev-set size), and says when the accuracy constraint is decided by a
point whose drop interval straddles the limit. Feasibility itself stays on the point estimates.

What is ignored: surrogate uncertainty, and points whose latency is NaN (counted, not ranked).
Accuracy drops are in points (100 x the metric, e.g. 0.91 -> 0.90 is 1 point), as the study's
`max_accuracy_drop` constraint is.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codesign import report_noise as noise
from codesign.report_precision import precision_lines
from codesign.accuracy.recipe import FIDELITIES
from codesign.pareto import (DEFAULT_OBJECTIVES, accelerator_columns, constraint_values,
                             interval_straddles, is_dense, points_column, with_speedup)
from codesign.plot_style import (fits as _fits, shape_order, source_label, task_label,
                                 truthy as _truthy)
from codesign.plots import LATENCY_AWARE, study_pareto_mask


def _num(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _cell(value: Any) -> str:
    text = _num(value) if isinstance(value, (float, np.floating)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table of `frame` (no index); floats with 4 significant digits."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([head, rule, *body])


def _objectives(study: Mapping) -> list:
    objs = study.get("objectives") if isinstance(study, Mapping) else None
    return list(objs) if objs else list(DEFAULT_OBJECTIVES)


def _constraints(study: Mapping) -> dict:
    cons = study.get("constraints") if isinstance(study, Mapping) else None
    return dict(cons) if isinstance(cons, Mapping) else {}


def accuracy_drop_points(points: pd.DataFrame) -> pd.Series:
    """Accuracy drop from dense in points (100 x metric): from accuracy_dense when present."""
    if "accuracy_dense" in points and "accuracy" in points:
        acc = pd.to_numeric(points["accuracy"], errors="coerce")
        dense = pd.to_numeric(points["accuracy_dense"], errors="coerce")
        return 100.0 * (dense - acc)
    if "accuracy_drop" in points:
        return pd.to_numeric(points["accuracy_drop"], errors="coerce")
    return pd.Series(np.nan, index=points.index)


def feasible_mask(points: pd.DataFrame, study: Mapping) -> np.ndarray:
    """Rows meeting the study's constraints with a finite latency: the sweep's own `feasible`
    column when the table has one, else the sweep's rule (codesign.sweep.records) applied here
    to max_accuracy_drop (points) and fits_board."""
    ok = np.isfinite(pd.to_numeric(points.get("latency_ms"), errors="coerce")
                     .to_numpy(dtype=float))
    if "feasible" in points:
        return ok & _truthy(points["feasible"])
    cons = _constraints(study)
    table = points.assign(accuracy_drop=accuracy_drop_points(points), fits=_fits(points))
    rule = [all(v <= 0 for v in constraint_values(
        row, max_accuracy_drop=cons.get("max_accuracy_drop"),
        fits_board=bool(cons.get("fits_board", True))).values())
        for row in table.to_dict("records")]
    return ok & np.asarray(rule, dtype=bool)


def _accel_text(row: Mapping, keys: Sequence[str]) -> str:
    skip = {"model", "seq_len", "batch", "board", "engine"}
    parts = []
    for k in keys:
        if k in skip:
            continue
        v = row.get(k)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        label = {"clock_mhz": "MHz"}.get(k, points_column(k))
        parts.append(f"{_num(v)} {label}" if k == "clock_mhz" else f"{label} {v}")
    if "sparse_strategy" in row and not str(row.get("block_shape")).lower() == "dense":
        parts.append(str(row["sparse_strategy"]))
    return ", ".join(parts)


def _acc_source(row: Mapping) -> str:
    source = str(row.get("accuracy_source", "measured"))
    precision = row.get("accuracy_precision")
    if isinstance(precision, str) and precision:
        source = f"{source} at {precision}"
    fid = row.get("accuracy_fidelity")
    if str(row.get("block_shape")).lower() == "dense" or fid in (None, "dense") or \
            (isinstance(fid, float) and np.isnan(fid)):
        return f"{source}, dense fine-tuned" if source.startswith("measured") else source
    return f"{source}, {fid}"


def _design_text(row: Mapping, keys: Sequence[str]) -> str:
    if str(row.get("block_shape")).lower() == "dense":
        what = "the dense model"
    elif row.get("allocation") == LATENCY_AWARE:
        what = (f"{row['block_shape']} blocks allocated latency-aware for a "
                f"{_num(row.get('speedup_target'), 3)}x speedup target (prune ratio "
                f"{_num(row.get('prune_ratio'), 3)})")
    else:
        what = (f"{row['block_shape']} blocks at {_num(row.get('compression'), 3)}x compression "
                f"(prune ratio {_num(row.get('prune_ratio'), 3)})")
    accel = _accel_text(row, keys)
    return what + (f" on {accel}" if accel else "")


def _describe(row: pd.Series, what: str, *, keys: Sequence[str], hw: str, acc_name: str,
              intervals: bool = False) -> str:
    """One answer line about one design point: its design, latency, energy, accuracy and the
    speedup it buys over dense on the same accelerator (row from with_speedup)."""
    value = noise.accuracy_text(row) if intervals else _num(row.get("accuracy"))
    acc = (f"{acc_name} {value} ({_acc_source(row)})"
           if pd.notna(row.get("accuracy")) else f"{acc_name} not measured")
    energy = (f", {_num(row.get('energy_mj'))} mJ" if pd.notna(row.get("energy_mj"))
              else "")
    text = (f"{what}: {_design_text(row, keys)}: {_num(row['latency_ms'])} ms{energy} "
            f"({hw}), {acc}")
    sp = row.get("speedup")
    if pd.notna(sp) and str(row.get("block_shape")).lower() != "dense":
        ideal = row.get("ideal_speedup")
        text += (f"; {_num(sp, 3)}x faster than dense on the same accelerator "
                 f"({_num(row.get('dense_latency_ms'))} ms, {hw})")
        if pd.notna(ideal) and ideal > 0:
            text += f", against an ideal {_num(ideal, 3)}x ({100 * sp / ideal:.0f}% of ideal)"
    return text + "."


def _constraints_line(points: pd.DataFrame, study: Mapping, feas: np.ndarray,
                      acc_name: str) -> str:
    """'Constraints: ...: N of M design points qualify.'"""
    cons = _constraints(study)
    dense_acc = (pd.to_numeric(points["accuracy_dense"], errors="coerce").dropna()
                 if "accuracy_dense" in points else pd.Series(dtype=float))
    rule = []
    if cons.get("max_accuracy_drop") is not None:
        base = (f" (dense {acc_name} {_num(dense_acc.median())}, measured)"
                if not dense_acc.empty else "")
        rule.append(f"accuracy drop <= {_num(cons['max_accuracy_drop'])} point(s){base}")
    if cons.get("fits_board", True) and "fits" in points:
        rule.append("fits the board")
    rule_text = " and ".join(rule) if rule else "no constraint"
    return (f"Constraints: {rule_text}: {int(feas.sum())} of {len(points)} design points "
            "qualify.")


def _within_limit_lines(points: pd.DataFrame, study: Mapping) -> list[str]:
    """Per block shape, the highest compression whose accuracy drop stays within the study's
    `max_accuracy_drop`, each (block, ratio) judged by the most expensive fidelity measured for
    it (one measurement per pruned model; the accelerator does not change accuracy)."""
    limit = _constraints(study).get("max_accuracy_drop")
    if limit is None or "accuracy" not in points or "block_shape" not in points:
        return []
    rows = points.loc[~is_dense(points)
                      & pd.to_numeric(points["accuracy"], errors="coerce").notna()]
    if rows.empty:
        return []
    rank = {f: i for i, f in enumerate(FIDELITIES)}
    fid = rows.get("accuracy_fidelity", pd.Series("", index=rows.index)).astype(str)
    # a pruned model measured at several precisions is one model per precision
    prec = rows.get("accuracy_precision", pd.Series("", index=rows.index)).fillna("").astype(str)
    rows = (rows.assign(_rank=fid.map(rank).fillna(-1), _prec=prec)
            .sort_values("_rank", kind="mergesort")
            .drop_duplicates(["block_shape", "prune_ratio", "_prec"], keep="last"))
    precisions = list(dict.fromkeys(rows["_prec"]))
    parts = []
    for block, p in ((b, p) for b in shape_order(list(dict.fromkeys(
            rows["block_shape"].astype(str)))) for p in precisions):
        grp = rows.loc[(rows["block_shape"].astype(str) == block) & (rows["_prec"] == p)]
        if grp.empty:
            continue
        block = f"{block} at {p}" if len(precisions) > 1 else block
        records = grp.sort_values("prune_ratio").to_dict("records")
        ok = [r for r in records if noise.drop_of(r) <= float(limit)]
        if not ok:
            low = records[0]
            parts.append(f"{block} none (at {_compression_text(low)} it loses "
                         f"{noise.drop_of(low):.1f} points, {low.get('accuracy_fidelity')})")
            continue
        best = ok[-1]
        d_low, d_high = noise.drop_interval_of(best)
        undecided = (" (undecided at this dev-set size: drop interval "
                     f"[{d_low:.1f}, {d_high:.1f}])"
                     if interval_straddles(d_low, d_high, float(limit)) else "")
        parts.append(f"{block} up to {_compression_text(best)} ({noise.drop_of(best):.1f} "
                     f"points, {best.get('accuracy_fidelity')}){undecided}")
    return [f"Block shapes within the {float(limit):g}-point limit (highest compression "
            "measured within it; each pruned model judged by its most expensive fidelity): "
            + "; ".join(parts) + "."]


def _compression_text(row: Mapping) -> str:
    """A row's nominal compression, 1 / (1 - prune_ratio), as `2x`."""
    return f"{1.0 / (1.0 - float(row['prune_ratio'])):.3g}x"


# the pipeline model's hardware keys, and the values that reproduce SCALE-Sim's counting
_SCALESIM_PIPELINE = {"weight_preload": "serial", "vector_overlap": "none"}


def _pipeline_lines(data: pd.DataFrame, feas: np.ndarray, keys: Sequence[str],
                    hw: str) -> list[str]:
    """When a study sweeps the pipeline model (weight_preload, vector_overlap): the fastest
    design meeting the constraints under each combination, SCALE-Sim's counting first."""
    cols = [c for c in _SCALESIM_PIPELINE if c in data and data[c].astype(str).nunique() > 1]
    cand = data.loc[feas]
    if not cols or cand.empty:
        return []
    parts = []
    for values, grp in cand.groupby([cand[c].astype(str) for c in cols], sort=False):
        values = values if isinstance(values, tuple) else (values,)
        scalesim = all(_SCALESIM_PIPELINE[c] == v for c, v in zip(cols, values))
        best = grp.sort_values("latency_ms", kind="mergesort").iloc[0]
        label = ", ".join(f"{c} {v}" for c, v in zip(cols, values))
        parts.append((not scalesim, f"{label}{' (SCALE-Sim counting)' if scalesim else ''}: "
                      f"{_design_text(best, [k for k in keys if k not in cols])}, "
                      f"{_num(best['latency_ms'])} ms"))
    return [f"Fastest design meeting the constraints under each pipeline model ({hw}): "
            + "; ".join(text for _, text in sorted(parts, key=lambda p: p[0])) + "."]


def _front_line(points: pd.DataFrame, in_set: np.ndarray) -> list[str]:
    """How many points the Pareto set has, their accuracy sources and block shapes."""
    front = points.loc[in_set]
    if not len(front):
        return []
    counts = front["block_shape"].astype(str).value_counts()
    order = sorted(counts.index, key=lambda s: (-counts[s], shape_order(list(counts.index))
                                                 .index(s)))
    shares = ", ".join(f"{s} ({counts[s]})" for s in order)
    sources = front.get("accuracy_source", pd.Series(dtype=str)).astype(str).value_counts()
    src = ", ".join(f"{n} {s}" for s, n in sources.items())
    return [f"The Pareto set has {len(front)} point(s) (accuracy: {src}); by block shape: "
            f"{shares}."]


def _speedup_gap_lines(data: pd.DataFrame, hw: str) -> list[str]:
    """Achieved vs ideal speedup per block shape at the highest compression (and per sparse
    strategy when there are several); data from with_speedup."""
    sparse = data.loc[~is_dense(data) & np.isfinite(data["speedup"].to_numpy(dtype=float))]
    if sparse.empty:
        return []
    top = sparse["compression"].max()
    at_top = sparse.loc[np.isclose(sparse["compression"], top)]
    eff = (at_top.groupby("block_shape")["speedup"].median() / top).sort_values(
        ascending=False)
    gaps = ", ".join(f"{s} {_num(e * top, 3)}x ({100 * e:.0f}%)" for s, e in eff.items())
    lines = [f"Ideal vs achieved speedup at the highest compression ({_num(top, 3)}x; "
             f"median over accelerator choices and sparse strategies, {hw}): {gaps}."]
    if "sparse_strategy" in sparse and sparse["sparse_strategy"].nunique() > 1:
        by_strat = at_top.groupby("sparse_strategy")["speedup"].median()
        lines.append("By sparse strategy at that compression: " + ", ".join(
            f"{s} {_num(v, 3)}x" for s, v in by_strat.items()) + ".")
    return lines


def _answer_lines(points: pd.DataFrame, study: Mapping, in_set: np.ndarray) -> list[str]:
    """The generated answer for one task's points."""
    keys = accelerator_columns(points, study)
    data = with_speedup(points, study)
    hw = source_label(points) or "source not recorded"
    feas = feasible_mask(points, study)
    metric = (str(points["accuracy_metric"].dropna().iloc[0])
              if "accuracy_metric" in points and points["accuracy_metric"].notna().any()
              else "accuracy")
    task = str(points["task"].iloc[0]) if "task" in points and len(points) else ""
    acc_name = task_label(task, metric) if task else metric
    lines = [_constraints_line(points, study, feas, acc_name), *_within_limit_lines(points, study)]
    noisy = noise.has_intervals(points)  # points.csv written since intervals exist
    limit = _constraints(study).get("max_accuracy_drop") if noisy else None

    def describe(row: pd.Series, what: str) -> str:
        return _describe(row, what, keys=keys, hw=hw, acc_name=acc_name, intervals=noisy)

    cand = data.loc[feas]
    if cand.empty:
        lines.append("No design point meets the constraints.")
        valid = data.loc[np.isfinite(data["latency_ms"].to_numpy(dtype=float))]
        if not valid.empty and "accuracy" in valid:
            best = valid.sort_values("accuracy", ascending=False, kind="mergesort").iloc[0]
            lines.append(describe(best, "The most accurate point overall" + (
                " by its point estimate" if noisy else "")))
            if noisy:
                lines += noise.ties_with_best_lines(valid, best)
        return lines + noise.constraint_lines(data, None, limit, describe)
    fastest = cand.sort_values("latency_ms", kind="mergesort").iloc[0]
    lines.append(describe(fastest, "Fastest design that meets them"))
    if noisy:
        lines += noise.versus_dense_lines(data, fastest, acc_name)
        lines += noise.constraint_lines(data, fastest, limit, describe)
    dense_rows = data.loc[is_dense(data) & feas]
    if not dense_rows.empty and str(fastest.get("block_shape")).lower() != "dense":
        best_dense = dense_rows.sort_values("latency_ms", kind="mergesort").iloc[0]
        lines.append(f"The fastest dense design ({_design_text(best_dense, keys)}) takes "
                     f"{_num(best_dense['latency_ms'])} ms ({hw}): the sparse design is "
                     f"{_num(best_dense['latency_ms'] / fastest['latency_ms'], 3)}x faster "
                     "than the best dense choice of accelerator.")
    if "energy_mj" in cand and cand["energy_mj"].notna().any():
        frugal = cand.sort_values("energy_mj", kind="mergesort").iloc[0]
        if frugal.name != fastest.name:
            lines.append(describe(frugal, "Lowest-energy design that meets them"))
        else:
            lines.append("The same design also has the lowest energy among those meeting the "
                         "constraints.")
    lines += _pipeline_lines(data, feas, keys, hw)
    lines += precision_lines(points, data, in_set, feas, describe)
    lines += _front_line(points, in_set)
    if noisy:
        lines += noise.pareto_lines(points, in_set, lambda row: _design_text(row, keys))
    return lines + _speedup_gap_lines(data, hw)


def _pareto_table(points: pd.DataFrame, study: Mapping, in_set: np.ndarray) -> str:
    data = with_speedup(points, study)
    keys = [k for k in accelerator_columns(points, study)
            if k not in ("model", "seq_len", "batch", "board", "engine")
            and points[k].nunique(dropna=False) > 1
            or points_column(k) in ("array", "dataflow")]
    keys = [k for k in keys if k in points]
    feas = feasible_mask(points, study)
    front = data.loc[in_set].copy()
    front["_feas"] = feas[in_set]
    front = front.sort_values(["latency_ms"], kind="mergesort")
    hw = source_label(points)
    table = pd.DataFrame({
        "block shape": front["block_shape"].astype(str),
        "compression": front["compression"].map(lambda v: f"{_num(v, 3)}x"),
    })
    if "allocation" in front and points["allocation"].nunique(dropna=True) > 1:
        table["allocation"] = [
            f"latency-aware, {_num(r.get('speedup_target'), 3)}x target"
            if r.get("allocation") == LATENCY_AWARE else r.get("allocation")
            for r in front.to_dict("records")]
    for k in keys:
        table[k] = front[k]
    if "sparse_strategy" in front:
        table["sparse strategy"] = front["sparse_strategy"]
    table[f"latency_ms ({hw or 'source?'})"] = front["latency_ms"]
    table["speedup vs dense"] = front["speedup"].map(
        lambda v: f"{_num(v, 3)}x" if pd.notna(v) else "n/a")
    if "energy_mj" in front:
        table["energy_mj"] = front["energy_mj"]
    if noise.has_intervals(front):
        table["accuracy [95% interval]"] = [noise.accuracy_text(r)
                                            for r in front.to_dict("records")]
    else:
        table["accuracy"] = front["accuracy"] if "accuracy" in front else np.nan
    table["accuracy source (fidelity)"] = [_acc_source(r) for _, r in front.iterrows()]
    table["meets constraints"] = front["_feas"].map({True: "yes", False: "no"})
    return markdown_table(table)


def render_report(points: pd.DataFrame, study: Mapping | None) -> str:
    """The report's markdown text (see the module docstring)."""
    study = dict(study or {})
    name = study.get("name") or "unnamed study"
    lines = [f"# Study `{name}`", ""]
    question = (study.get("question") or "").strip()
    lines += [f"**Question.** {question if question else '(the study file states none)'}", ""]
    objs = ", ".join(f"{o.get('direction', '?')} {o.get('metric', '?')}" if isinstance(o, Mapping)
                     else f"{o[1]} {o[0]}" for o in _objectives(study))
    hw = source_label(points) or "not recorded"
    acc_src = (points["accuracy_source"].astype(str).value_counts().to_dict()
               if "accuracy_source" in points else {})
    fid = (points["accuracy_fidelity"].astype(str).value_counts().to_dict()
           if "accuracy_fidelity" in points else {})
    lines += [
        f"- Design points: {len(points)} (dense baselines: {int(is_dense(points).sum())}); "
        f"latency and energy: {hw}; accuracy: "
        + (", ".join(f"{n} {s}" for s, n in acc_src.items()) or "n/a")
        + (" (fidelity: " + ", ".join(f"{n} {f}" for f, n in fid.items()) + ")" if fid else ""),
        *noise.header_lines(points),
        f"- Objectives: {objs}.",
        "",
    ]
    in_set_all = study_pareto_mask(points, _objectives(study))
    tasks = list(dict.fromkeys(points["task"].astype(str))) if "task" in points else [""]
    for task in tasks:
        sel = ((points["task"].astype(str) == task).to_numpy() if task
               else np.ones(len(points), dtype=bool))
        part = points.loc[sel]
        in_set = in_set_all[sel]
        title = task_label(task).rsplit(" (", 1)[0].split(" ")[0] if task else ""
        lines += [f"## Answer{f' ({title})' if title else ''}", ""]
        lines += [f"- {line}" for line in _answer_lines(part, study, in_set)]
        lines += ["", f"## Pareto set{f' ({title})' if title else ''}", ""]
        if in_set.any():
            lines += [f"{int(in_set.sum())} non-dominated design point(s) over the objectives, "
                      "fastest first.", "", _pareto_table(part, study, in_set)]
        else:
            lines += ["No point has finite values on every objective: the Pareto set is empty."]
        lines.append("")
    lines += ["## Figures", "",
              "![Pareto fronts: latency and energy vs accuracy](pareto.png)", "",
              "![Achieved vs ideal latency speedup](speedup.png)", ""]
    return "\n".join(lines)


def write_report(points: pd.DataFrame, study: Mapping | None, out_dir: str | Path) -> Path:
    """Write report.md into `out_dir` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text(render_report(points, study), encoding="utf-8")
    return path


REQUIRED_COLUMNS = ("block_shape", "compression", "latency_ms", "accuracy")


def load_results(results_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """(points, study) of a finished results folder: points.csv and study.yaml.

    Raises ValueError (one line naming the folder and what is missing) when it is not one.
    """
    import yaml

    from codesign.plots import load_points

    folder = Path(results_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; give the output folder of "
                         "`codesign sweep` (it holds points.csv and study.yaml)")
    missing = [n for n in ("points.csv", "study.yaml") if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{folder}: not a results folder (no {' or '.join(missing)}); give the "
                         "output folder of `codesign sweep STUDY.yaml`")
    try:
        points = load_points(folder / "points.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{folder / 'points.csv'}: unreadable "
                         f"({' '.join(str(exc).split())[:120]})") from None
    lacking = [c for c in REQUIRED_COLUMNS if c not in points.columns]
    if lacking:
        raise ValueError(f"{folder / 'points.csv'}: lacks column(s) {', '.join(lacking)}; "
                         "is it a codesign points table?")
    try:
        study = yaml.safe_load((folder / "study.yaml").read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{folder / 'study.yaml'}: not valid YAML "
                         f"({getattr(exc, 'problem', None) or 'parse error'})") from None
    if not isinstance(study, dict):
        raise ValueError(f"{folder / 'study.yaml'}: expected a mapping (the validated study)")
    return points, study


def replot(results_dir: str | Path, *, plots: bool = True) -> tuple[list[Path], str]:
    """Redraw the figures and rewrite report.md of a finished study from its points.csv and
    study.yaml (nothing is simulated or measured again). Returns (written paths, report text)."""
    from codesign.plots import plot_study

    points, study = load_results(results_dir)
    folder = Path(results_dir)
    written = (plot_study(points, folder, objectives=_objectives(study), study=study)
               if plots else [])
    text = render_report(points, study)
    path = folder / "report.md"
    path.write_text(text, encoding="utf-8")
    return [*written, path], text
