"""Plots, report.md and `codesign pareto DIR` on a synthetic points table with the contract's
columns (no simulation, no model): files exist, figures say what they show, the report lists
exactly the Pareto rows, and a folder that is not a results folder gets a one-line error."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest_results import SHAPES, STUDY, make_points, write_results_dir

from codesign.cli import main
from codesign.plots import pareto_figure, plot_study, shape_colors, speedup_figure
from codesign.report import render_report, write_report

OBJECTIVES = [("latency_ms", "min"), ("energy_mj", "min"), ("accuracy", "max")]


def _front_reference(points: pd.DataFrame) -> np.ndarray:
    """Brute-force non-dominated rows among those that fit (the report's rule without a stored
    pareto column)."""
    costs = np.column_stack([points["latency_ms"], points["energy_mj"], -points["accuracy"]])
    fits = points["fits"].to_numpy()
    out = np.zeros(len(points), dtype=bool)
    for i in np.flatnonzero(fits):
        out[i] = not any((costs[j] <= costs[i]).all() and (costs[j] < costs[i]).any()
                         for j in np.flatnonzero(fits) if j != i)
    return out


def _table_rows(text: str, section: str = "## Pareto set") -> list[str]:
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    return rows[1:]  # drop the header


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    return make_points()


def _svg_texts(path) -> list[str]:
    """The texts of a matplotlib SVG (each text element is preceded by a comment holding it)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text())


def test_plot_study_writes_png_and_svg(points, tmp_path):
    paths = plot_study(points, tmp_path, objectives=OBJECTIVES, study=STUDY)
    names = sorted(p.name for p in paths)
    assert names == ["pareto.png", "pareto.svg", "speedup.png", "speedup.svg"]
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = _svg_texts(tmp_path / "pareto.svg")
    assert texts.count("SST-2 accuracy (dev)") == 2  # one per panel
    assert "Latency per inference (ms)  [simulated: analytical/0.1]" in texts
    assert "Energy per inference (mJ)  [simulated: analytical/0.1]" in texts
    assert "Pareto fronts: synthetic_zcu102, minilm-l6, on zcu102, 34 design points" in texts
    assert [t for t in texts if t in SHAPES] == list(SHAPES)  # the legend, fine to coarse
    texts = _svg_texts(tmp_path / "speedup.svg")
    assert texts.count("Compression (dense weights / kept weights, x)") == 2
    assert {"sparse strategy: tile-skip", "sparse strategy: compact",
            "ideal: speedup = compression",
            "Latency speedup over dense, same accelerator (x)"} <= set(texts)


def test_pareto_figure_draws_every_point_once_and_rings_the_front(points):
    fig = pareto_figure(points, objectives=OBJECTIVES, study=STUDY)
    for ax, x in zip(fig.axes, ("latency_ms", "energy_mj")):
        rings = [c for c in ax.collections if c.get_zorder() == 4]
        marks = [c for c in ax.collections if c.get_zorder() != 4]
        drawn = sorted(map(tuple, np.concatenate([c.get_offsets() for c in marks])))
        assert drawn == sorted(zip(points[x], points["accuracy"]))
        front = points.loc[_front_reference(points)]
        assert len(rings) == 1
        assert sorted(map(tuple, rings[0].get_offsets())) == sorted(zip(front[x],
                                                                        front["accuracy"]))
        nofit = [c for c in marks if c.get_zorder() == 6][0].get_offsets()
        assert sorted(map(tuple, nofit)) == sorted(
            zip(points.loc[~points["fits"], x], points.loc[~points["fits"], "accuracy"]))


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.texts]
    for leg in fig.legends:
        parts += [t.get_text() for t in leg.get_texts()]
        parts.append(leg.get_title().get_text())
    for ax in fig.axes:
        parts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
    if fig._suptitle is not None:
        parts.append(fig._suptitle.get_text())
    return "\n".join(parts)


def test_pareto_figure_says_what_it_shows(points):
    fig = pareto_figure(points, objectives=OBJECTIVES, study=STUDY)
    text = _texts(fig)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "SST-2 accuracy (dev)"
    assert "Latency per inference (ms)" in fig.axes[0].get_xlabel()
    assert "Energy per inference (mJ)" in fig.axes[1].get_xlabel()
    assert "simulated" in fig.axes[0].get_xlabel()
    for label in ("dense baseline", "surrogate", "does not fit", "1x16", "32x32", "one-shot",
                  "RGL", "accuracy floor"):
        assert label in text, label
    # without surrogate points the legend must not claim there are some
    measured = points.assign(accuracy_source="measured")
    assert "surrogate" not in _texts(pareto_figure(measured, objectives=OBJECTIVES))


def test_pareto_figure_front_line_is_the_two_objective_front(points):
    fig = pareto_figure(points, objectives=OBJECTIVES)
    ax = fig.axes[0]
    steps = [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]
    assert len(steps) == 1
    xs, ys = steps[0].get_data()
    fit = points.loc[points["fits"]]
    expect = [(x, y) for x, y in zip(fit["latency_ms"], fit["accuracy"])
              if not any((x2 <= x and y2 >= y and (x2 < x or y2 > y))
                         for x2, y2 in zip(fit["latency_ms"], fit["accuracy"]))]
    assert sorted(zip(xs, ys)) == sorted(expect)


def test_one_row_of_panels_per_task(points):
    two = pd.concat([points, points.assign(task="rte", accuracy=points["accuracy"] - 0.2,
                                           accuracy_dense=points["accuracy_dense"] - 0.2)])
    fig = pareto_figure(two.reset_index(drop=True), objectives=OBJECTIVES)
    assert len(fig.axes) == 4
    assert fig.axes[2].get_ylabel() == "RTE accuracy (dev)"
    text = render_report(two.reset_index(drop=True), STUDY)
    assert "## Answer (SST-2)" in text and "## Answer (RTE)" in text


def test_colours_are_consistent_per_shape():
    a = shape_colors(["1x16", "16x16", "dense"])
    b = shape_colors(["16x16", "32x32", "7x3", "1x16"])
    assert a["16x16"] == b["16x16"] and a["1x16"] == b["1x16"]
    assert a["dense"] == "black"
    assert len(set(b.values())) == len(b)


def test_speedup_figure_has_ideal_line_and_one_panel_per_strategy(points):
    fig = speedup_figure(points, study=STUDY)
    assert [ax.get_title() for ax in fig.axes] == ["sparse strategy: tile-skip",
                                                   "sparse strategy: compact"]
    assert "ideal: speedup = compression" in _texts(fig)
    for ax in fig.axes:
        assert any(ln.get_linestyle() == "--" and np.allclose(*ln.get_data())
                   for ln in ax.get_lines())
    # the 32x32 line at 5x compression: median over the two arrays of dense/sparse latency
    sel = points[(points.block_shape == "32x32") & (points.sparse_strategy == "compact")
                 & (points.prune_ratio == 0.8)]
    dense = points[points.block_shape == "dense"].set_index("array")["latency_ms"]
    want = np.median([dense[a] / lat for a, lat in zip(sel["array"], sel["latency_ms"])])
    ys = [ln.get_data()[1][-1] for ln in fig.axes[1].get_lines() if ln.get_marker() == "o"]
    assert any(np.isclose(y, want) for y in ys)


def test_report_lists_exactly_the_pareto_rows(points, tmp_path):
    path = write_report(points, STUDY, tmp_path)
    text = path.read_text()
    assert text.startswith("# Study `synthetic_zcu102`")
    assert STUDY["question"] in text
    assert "34 (dense baselines: 2)" in text
    expected = points.loc[_front_reference(points)]
    rows = _table_rows(text)
    assert len(rows) == len(expected)
    lat_cells = [float(r.split("|")[6]) for r in rows]  # latency column
    np.testing.assert_allclose(sorted(lat_cells), sorted(expected["latency_ms"]), rtol=1e-3)
    assert lat_cells == sorted(lat_cells)  # fastest first


def test_report_uses_the_stored_pareto_column(points):
    marked = points.copy()
    chosen = [3, 17, 30]
    marked["pareto"] = False
    marked.loc[chosen, "pareto"] = True
    rows = _table_rows(render_report(marked, STUDY))
    assert len(rows) == 3
    for i in chosen:
        assert any(f"{marked.loc[i, 'latency_ms']:.4g}" in r for r in rows)


def test_report_answers_with_the_fastest_feasible_point(points):
    text = render_report(points, STUDY)
    drop = 100 * (points["accuracy_dense"] - points["accuracy"])
    feasible = points.loc[points["fits"] & (drop <= 1.0)]
    best = feasible.sort_values("latency_ms").iloc[0]
    line = next(li for li in text.splitlines() if li.startswith("- Fastest design"))
    assert f"{best['latency_ms']:.4g} ms" in line
    assert f"{best['block_shape']} blocks" in line
    assert "simulated: analytical/0.1" in line and "measured" in line
    dense_lat = points.loc[(points.block_shape == "dense") & (points.array == best["array"]),
                           "latency_ms"].iloc[0]
    assert f"{dense_lat / best['latency_ms']:.3g}x faster than dense" in line
    assert f"{int(len(feasible))} of {len(points)} design points qualify" in text
    assert "Ideal vs achieved speedup" in text


def test_report_when_nothing_meets_the_constraints(points):
    study = {**STUDY, "constraints": {"max_accuracy_drop": 0.0, "fits_board": True}}
    worse = points.assign(accuracy=points["accuracy_dense"] - 0.05)
    text = render_report(worse, study)
    assert "No design point meets the constraints." in text


def test_nan_accuracy_rows_are_drawn_around_not_crashed_on(points, tmp_path):
    holed = points.copy()
    holed.loc[::3, "accuracy"] = np.nan
    assert len(plot_study(holed, tmp_path)) == 4
    rows = _table_rows(render_report(holed, STUDY))
    assert all("| nan |" not in r and "n/a |" not in r.split("|")[9] for r in rows)


def test_cli_pareto_replots_a_results_folder(tmp_path):
    folder = write_results_dir(tmp_path / "res")
    result = CliRunner().invoke(main, ["pareto", str(folder)])
    assert result.exit_code == 0, result.output
    for name in ("pareto.png", "pareto.svg", "speedup.png", "speedup.svg", "report.md"):
        assert (folder / name).stat().st_size > 0
    assert "## Pareto set" in result.output
    assert (folder / "report.md").read_text().strip() in result.output
    # points.csv is only read, never rewritten
    before = (folder / "points.csv").read_bytes()
    CliRunner().invoke(main, ["pareto", str(folder), "--no-plots"])
    assert (folder / "points.csv").read_bytes() == before


@pytest.mark.parametrize("make,needle", [
    (lambda d: d, "not a results folder"),
    (lambda d: d / "missing", "no such folder"),
    (lambda d: (write_results_dir(d), (d / "study.yaml").unlink(), d)[-1], "no study.yaml"),
    (lambda d: (write_results_dir(d, make_points().drop(columns=["latency_ms"])), d)[-1],
     "lacks column(s) latency_ms"),
    (lambda d: (write_results_dir(d), (d / "study.yaml").write_text("a: [1,"), d)[-1],
     "not valid YAML"),
])
def test_cli_pareto_errors_in_one_line(tmp_path, make, needle):
    folder = make(tmp_path)
    result = CliRunner().invoke(main, ["pareto", str(folder)])
    assert result.exit_code != 0
    lines = [li for li in result.output.splitlines() if li.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert re.search(re.escape(str(folder)), lines[0])


def test_report_honours_the_sweeps_feasible_column(points):
    marked = points.assign(feasible=False)
    slow = marked["latency_ms"].idxmax()
    marked.loc[slow, "feasible"] = True
    line = next(li for li in render_report(marked, STUDY).splitlines()
                if li.startswith("- Fastest design"))
    assert f"{marked.loc[slow, 'latency_ms']:.4g} ms" in line


def test_swept_buffer_sizes_separate_accelerators():
    from codesign.pareto import accelerator_columns, with_speedup

    df = pd.DataFrame({"block_shape": ["dense", "dense", "8x8", "8x8"],
                       "prune_ratio": [0.0, 0.0, 0.5, 0.5], "compression": [1.0, 1.0, 2.0, 2.0],
                       "array": ["32x32"] * 4, "buffer_weight_kib": [256, 512, 256, 512],
                       "latency_ms": [10.0, 8.0, 6.0, 2.0]})
    assert "buffer_weight_kib" in accelerator_columns(df)
    assert with_speedup(df)["speedup"].tolist()[2:] == [10.0 / 6.0, 4.0]


def test_plot_study_reads_study_yaml_next_to_the_figures(points, tmp_path):
    import matplotlib.image

    folder = write_results_dir(tmp_path / "res", points)
    plot_study(points, folder)  # no study passed: the floor and name come from study.yaml
    with_yaml = matplotlib.image.imread(folder / "pareto.png")
    plot_study(points, tmp_path / "bare")
    bare = matplotlib.image.imread(tmp_path / "bare" / "pareto.png")
    assert with_yaml.shape != bare.shape or not np.array_equal(with_yaml, bare)


def test_a_loose_accuracy_floor_is_noted_not_drawn(points):
    loose = {**STUDY, "constraints": {"max_accuracy_drop": 50.0, "fits_board": True}}
    fig = pareto_figure(points, objectives=OBJECTIVES, study=loose)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > 0.5  # the axis is not stretched down to the floor
    assert any("is below every point" in t.get_text() for t in ax.texts)
    tight = pareto_figure(points, objectives=OBJECTIVES, study=STUDY)
    floors = [ln for ln in tight.axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert floors and np.isclose(floors[0].get_ydata()[0], 0.91 - 0.01)


def _table(text: str) -> list[dict[str, str]]:
    """The first markdown table after '## Pareto set' as {header: cell} rows."""
    body = text.split("## Pareto set", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[1:]]


def _pareto_cli(tmp_path, marked: pd.DataFrame):
    """`codesign pareto --no-plots` on a results folder of `marked` (points 0, 5, 12, 21, 30 on
    the front): the stored points.csv, its front rows fastest first, the printed table's rows
    and the whole output."""
    marked.loc[[0, 5, 12, 21, 30], "pareto"] = True
    folder = write_results_dir(tmp_path / "res", marked)
    result = CliRunner().invoke(main, ["pareto", str(folder), "--no-plots"])
    assert result.exit_code == 0, result.output
    stored = pd.read_csv(folder / "points.csv")
    expected = stored.loc[stored["pareto"]].sort_values("latency_ms", kind="mergesort")
    return stored, expected, _table(result.output), result.output


def test_cli_pareto_table_rows_are_the_points_csv_rows(tmp_path):
    stored, expected, rows, _ = _pareto_cli(tmp_path, make_points())
    assert len(rows) == len(expected) == 5
    latency = "latency_ms (simulated: analytical/0.1)"
    for row, (_, point) in zip(rows, expected.iterrows()):
        meets = bool(point["fits"]) and 100 * (point["accuracy_dense"] - point["accuracy"]) <= 1
        assert row == {
            "block shape": point["block_shape"], "compression": f"{point['compression']:.3g}x",
            "dataflow": point["dataflow"], "array": point["array"],
            "sparse strategy": point["sparse_strategy"], latency: f"{point['latency_ms']:.4g}",
            "speedup vs dense": row["speedup vs dense"], "energy_mj": f"{point['energy_mj']:.4g}",
            "accuracy": f"{point['accuracy']:.4g}",
            "accuracy source (fidelity)": row["accuracy source (fidelity)"],
            "meets constraints": "yes" if meets else "no"}
        source = row["accuracy source (fidelity)"]
        assert source.startswith(point["accuracy_source"])
        assert source.endswith("dense fine-tuned" if point["block_shape"] == "dense"
                               else point["accuracy_fidelity"])
        dense = stored.loc[(stored["block_shape"] == "dense")
                           & (stored["array"] == point["array"]), "latency_ms"].iloc[0]
        assert row["speedup vs dense"] == f"{dense / point['latency_ms']:.3g}x"


# --- dev-set noise: intervals in the table, the answer and the figure ---------------------------

NOISY = make_points(dev_examples=872)  # the binomial normal approximation (conftest_results)


def test_table_rows_carry_the_interval_of_points_csv(tmp_path):
    marked = NOISY.copy()
    marked.loc[12, ["accuracy_low", "accuracy_high"]] = np.nan  # measured before intervals
    stored, expected, rows, output = _pareto_cli(tmp_path, marked)
    assert len(rows) == 5
    for row, (i, point) in zip(rows, expected.iterrows()):
        cell = row["accuracy [95% interval]"]
        if i == 12:
            assert cell == f"{point['accuracy']:.3f} [interval unknown]"
        else:
            assert cell == (f"{point['accuracy']:.3f} [{point['accuracy_low']:.3f}, "
                            f"{point['accuracy_high']:.3f}]")
        assert row["accuracy source (fidelity)"].startswith(
            f"{point['accuracy_source']} at fp32, ")
    assert "for 33 of the 34 points with an accuracy (1 measured before intervals" in output


def _two_designs(dense_acc: float, sparse_acc: float, half: float, limit_drop: float = 1.5):
    """A dense and a 2x-faster sparse design on one accelerator, intervals acc -+ half."""
    rows = []
    for shape, acc, lat in (("dense", dense_acc, 10.0), ("16x16", sparse_acc, 5.0)):
        rows.append(dict(task="sst2", model="minilm-l6", block_shape=shape,
                         prune_ratio=0.0 if shape == "dense" else 0.5,
                         compression=1.0 if shape == "dense" else 2.0,
                         sparse_strategy="dense" if shape == "dense" else "compact",
                         dataflow="ws", array="32x32", latency_ms=lat, energy_mj=lat,
                         fits=True, accuracy=acc, accuracy_low=acc - half,
                         accuracy_high=acc + half, accuracy_metric="accuracy",
                         accuracy_dense=dense_acc, accuracy_fidelity="oneshot",
                         accuracy_source="measured", accuracy_precision="fp32",
                         hw_source="simulated:analytical/0.1"))
    study = {**STUDY, "constraints": {"max_accuracy_drop": limit_drop, "fits_board": True}}
    return pd.DataFrame(rows), study


def _answer(text: str) -> str:
    return text.split("## Answer", 1)[1].split("\n## ", 1)[0]


def test_overlapping_intervals_are_reported_indistinguishable():
    points, study = _two_designs(0.800, 0.790, 0.027)  # 1 point apart, intervals +-2.7
    answer = _answer(render_report(points, study))
    assert "SST-2 accuracy (dev) 0.790 [0.763, 0.817] (measured at fp32, oneshot)" in answer
    assert ("At this dev-set size its SST-2 accuracy (dev) is indistinguishable from the dense "
            "model's (0.800 [0.773, 0.827]): the intervals overlap.") in answer
    assert "more accurate" not in answer and "beyond the dev-set noise" not in answer
    # the two points are both on the Pareto set: the slower one's lead is within the noise
    assert "1 of the 2 points of the Pareto set lead a faster point of the set in accuracy " \
           "only within the dev-set noise" in answer
    # well apart: then (and only then) the report may rank them
    apart, study = _two_designs(0.800, 0.700, 0.027, limit_drop=20)
    answer = _answer(render_report(apart, study))
    assert "is below the dense model's (0.800 [0.773, 0.827]) beyond the dev-set noise" in answer
    assert "No point of the Pareto set leads a faster point" in answer
    assert "indistinguishable" not in answer


def test_a_constraint_decided_by_a_straddling_interval_is_named():
    # drop 1.0 point, interval [-1.7, 3.7]: meets the 1.5-point limit by its point estimate only
    points, study = _two_designs(0.800, 0.790, 0.027)
    answer = _answer(render_report(points, study))
    assert ("Its accuracy drop, 1.00 [-1.70, 3.70] points, straddles the limit of 1.5 point(s): "
            "at this dev-set size it is not decided that it meets the constraint.") in answer
    # drop 2.0: the sparse design fails, but only by its point estimate
    points, study = _two_designs(0.800, 0.780, 0.027)
    answer = _answer(render_report(points, study))
    assert "Fastest design that meets them: the dense model" in answer
    assert ("- 1 faster design(s) miss the accuracy limit by their point estimate only (their "
            "drop interval reaches down to 1.5 point(s)), so the constraint is not decided for "
            "them at this dev-set size; the fastest of them: 16x16 blocks") in answer
    # a tight interval decides it: no such sentence
    points, study = _two_designs(0.800, 0.780, 0.002)
    assert "not decided" not in render_report(points, study)


def test_a_table_without_interval_columns_reports_as_before(points):
    text = render_report(points, STUDY)
    assert "Accuracy intervals" not in text and "indistinguishable" not in text
    assert "| accuracy |" in text and "[" not in _table_rows(text)[0]


def test_pareto_figure_draws_thin_interval_bars_under_the_markers(tmp_path):
    fig = pareto_figure(NOISY, objectives=OBJECTIVES, study=STUDY)
    for c, (ax, x) in enumerate(zip(fig.axes, ("latency_ms", "energy_mj"))):
        bars = [col for col in ax.collections if (col.get_gid() or "").startswith(
            "accuracy-interval")]
        assert len(bars) == 1 and bars[0].get_gid() == f"accuracy-interval-0-{c}"
        segments = sorted((tuple(s[0]), tuple(s[1])) for s in bars[0].get_segments())
        want = sorted(((px, lo), (px, hi)) for px, lo, hi in
                      zip(NOISY[x], NOISY["accuracy_low"], NOISY["accuracy_high"]))
        np.testing.assert_allclose(np.asarray(segments), np.asarray(want))
        assert bars[0].get_linewidths()[0] <= 1.0
        markers = [col for col in ax.collections if col not in bars]
        assert bars[0].get_zorder() < min(col.get_zorder() for col in markers)
    assert "bar: 95% bootstrap interval (dev set)" in _texts(fig)
    plot_study(NOISY, tmp_path, objectives=OBJECTIVES, study=STUDY, formats=("svg",))
    svg = (tmp_path / "pareto.svg").read_text()
    assert 'id="accuracy-interval-0-0"' in svg and 'id="accuracy-interval-0-1"' in svg
    # a table from before intervals: no bars, no legend entry
    old = pareto_figure(make_points(), objectives=OBJECTIVES, study=STUDY)
    assert not [col for ax in old.axes for col in ax.collections
                if (col.get_gid() or "").startswith("accuracy-interval")]
    assert "bootstrap interval" not in _texts(old)


def test_report_names_each_block_shapes_highest_compression_within_the_limit():
    base, study = _two_designs(0.800, 0.790, 0.002)
    dense = base.iloc[0].to_dict()

    def row(shape, ratio, acc, fidelity, lat):
        return {**base.iloc[1].to_dict(), "block_shape": shape, "prune_ratio": ratio,
                "compression": 1 / (1 - ratio), "accuracy": acc, "accuracy_low": acc - 0.002,
                "accuracy_high": acc + 0.002, "accuracy_fidelity": fidelity, "latency_ms": lat}
    rows = [dense,
            # 1x16: calibrated says 2x fails (drop 3), retraining the same model recovers it
            row("1x16", 1 / 3, 0.795, "calibrated", 8.0),
            row("1x16", 0.5, 0.770, "calibrated", 6.0), row("1x16", 0.5, 0.792, "retrain", 6.0),
            row("1x16", 2 / 3, 0.700, "calibrated", 4.0),
            # 16x16: fails already at 1.5x
            row("16x16", 1 / 3, 0.760, "calibrated", 7.0),
            row("16x16", 0.5, 0.650, "calibrated", 5.0)]
    text = _answer(render_report(pd.DataFrame(rows), study))
    assert ("Block shapes within the 1.5-point limit (highest compression measured within it; "
            "each pruned model judged by its most expensive fidelity): 1x16 up to 2x (0.8 points, "
            "retrain); 16x16 none (at 1.5x it loses 4.0 points, calibrated).") in text


def test_report_judges_each_precision_of_a_block_shape_on_its_own():
    base, study = _two_designs(0.800, 0.790, 0.002)
    dense = base.iloc[0].to_dict()

    def row(precision, acc):
        return {**base.iloc[1].to_dict(), "block_shape": "32x32", "prune_ratio": 0.5,
                "compression": 2.0, "accuracy": acc, "accuracy_low": acc - 0.002,
                "accuracy_high": acc + 0.002, "accuracy_fidelity": "calibrated",
                "accuracy_precision": precision, "precision": precision}
    # the w8a8 model stays within the limit, the w4a8 one does not (either order in the table)
    for rows in ([row("w8a8", 0.792), row("w4a8", 0.770)],
                 [row("w4a8", 0.770), row("w8a8", 0.792)]):
        dense_rows = [{**dense, "precision": p, "accuracy_precision": p}
                      for p in ("w8a8", "w4a8")]
        text = _answer(render_report(pd.DataFrame([*dense_rows, *rows]), study))
        assert "32x32 at w8a8 up to 2x (0.8 points, calibrated)" in text
        assert "32x32 at w4a8 none (at 2x it loses 3.0 points, calibrated)" in text


def test_report_names_the_fastest_design_under_each_swept_pipeline_model():
    base, study = _two_designs(0.800, 0.795, 0.002)
    rows = []
    for preload, overlap, scale in (("serial", "none", 1.0), ("overlapped", "fused", 0.7)):
        for r in base.to_dict("records"):
            rows.append({**r, "weight_preload": preload, "vector_overlap": overlap,
                         "latency_ms": r["latency_ms"] * scale})
    study = {**study, "hardware": {**study.get("hardware", {}),
                                   "weight_preload": ["serial", "overlapped"],
                                   "vector_overlap": ["none", "fused"]}}
    text = _answer(render_report(pd.DataFrame(rows), study))
    line = next(x for x in text.splitlines() if "under each pipeline model" in x)
    assert line.index("weight_preload serial, vector_overlap none (SCALE-Sim counting): 16x16") \
        < line.index("weight_preload overlapped, vector_overlap fused: 16x16")
    assert ", 5 ms;" in line and line.endswith(", 3.5 ms.")
