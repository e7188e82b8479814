"""Run (or resume) a study: the driver loop and what it writes.

What is modelled: the design space is built once from the validated study; the grid (or the
NSGA-II search) evaluates the first stage, the promotion stages follow, and the points table
(one row per point, its most expensive evaluation, with the feasibility rule re-applied and the
per-task Pareto front of feasible points) is written with the study, the plots and the report.
Ctrl-C leaves the store consistent (each point is one storage write) and exports what is stored;
a re-run skips stored points.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesign.study import Study
from codesign.sweep.progress import Progress
from codesign.sweep.promotion import points_by_config, promote
from codesign.sweep.records import feasible
from codesign.sweep.runner import Runner
from codesign.sweep.search import run_grid, run_search
from codesign.sweep.space import DesignSpace


@dataclass
class SweepResult:
    out_dir: Path
    points: Any  # pandas DataFrame
    n_points: int
    n_new: int
    n_failed: int
    n_accuracy_measured: int
    seconds: float
    interrupted: bool = False
    files: list[Path] = field(default_factory=list)


class SweepInterrupted(KeyboardInterrupt):
    """Raised after a clean stop; the store holds every finished point."""

    def __init__(self, result: SweepResult):
        super().__init__(f"interrupted after {result.n_new} new points")
        self.result = result


def run_sweep(study: Study, out_dir: str | Path | None = None, *, workers: int = 1,
              dask: str | None = None, progress: Progress | None = None, cache=None,
              stop_after: int | None = None, write: bool = True,
              measure_on: str = "auto") -> SweepResult:
    """Run (or resume) a study; returns its points. On Ctrl-C raises SweepInterrupted after
    exporting what is stored. `stop_after` (tests) interrupts after that many new points.
    `measure_on`: where accuracy measurements run (codesign.sweep.runner.MEASURE_ON)."""
    t0 = time.monotonic()
    out = study.output_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    space = DesignSpace.of(study)
    runner = Runner(space, out, workers=max(1, int(workers)), dask=dask, progress=progress,
                    cache=cache, stop_after=stop_after, measure_on=measure_on)
    grid = study.search.method == "grid"
    points = space.points() if grid else []
    interrupted = False
    try:
        if grid:
            run_grid(runner, points)
        else:
            run_search(runner)
        promote(runner, points_by_config(runner, points))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress:
            progress.close()
        runner.close(cancel=interrupted)
    records = runner.store.records(runner.context, [p.point_id for p in points] or None)
    for rec in records:  # constraints may have changed since a point was stored
        rec["feasible"] = feasible(study, rec)
    df = points_table(study, records)
    files: list[Path] = []
    if write and interrupted:
        from codesign.store import export_points

        files = export_points(df, out)  # what is stored; plots and report at the end
    elif write:
        files = write_outputs(study, df, out)
    result = SweepResult(out, df, len(df), runner.n_new, runner.n_failed,
                         runner.accuracy.measured, time.monotonic() - t0, interrupted, files)
    if interrupted:
        raise SweepInterrupted(result)
    return result


def points_table(study: Study, records: list[dict[str, Any]]):
    """The points table with the `pareto` column (feasible rows only, per task)."""
    import numpy as np

    from codesign.pareto import pareto_mask
    from codesign.store import records_frame

    df = records_frame(records)
    if df.empty:
        return df
    df["pareto"] = False
    for task, idx in df.groupby("task", sort=True).groups.items():
        sub = df.loc[idx]
        ok = sub["feasible"].astype(bool).to_numpy()
        if not ok.any():
            continue
        mask = np.zeros(len(sub), dtype=bool)
        mask[ok] = pareto_mask(sub[ok], study.objective_pairs)
        df.loc[idx, "pareto"] = mask
    df["pareto"] = df["pareto"].astype(bool)
    return df


def write_outputs(study: Study, df, out_dir: Path) -> list[Path]:
    """points.csv/.parquet, study.yaml, then the plots and report (codesign.plots/report)."""
    import yaml

    from codesign.store import export_points

    files = export_points(df, out_dir)
    plain = study.to_plain()
    (out_dir / "study.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    files.append(out_dir / "study.yaml")
    if df.empty:
        return files
    from codesign.plots import plot_study
    from codesign.report import write_report

    files += list(plot_study(df, out_dir, objectives=study.objective_pairs, study=plain))
    files.append(Path(write_report(df, plain, out_dir)))
    return files
