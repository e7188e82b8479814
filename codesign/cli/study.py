"""Study commands: `codesign sweep STUDY.yaml` (run, resume or --dry-run a co-design study,
through codesign.sweep) and `codesign pareto DIR` (redraw the figures and report.md of a finished
study, through codesign.report.replot). optuna is imported, and quieted, inside `sweep` only.
"""
from __future__ import annotations

import click

from codesign.cli.common import CodesignError, one_line


@click.command("sweep")
@click.argument("study_file", metavar="STUDY.yaml", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Results folder (default: the study's `output`, else results/NAME).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Local worker processes for the hardware simulations (and the accuracy "
                   "measurements when the cores give each at least one thread).")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Run the hardware simulations and accuracy measurements on an existing "
                   "dask.distributed scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--measure-on", type=click.Choice(["auto", "main", "workers"]), default="auto",
              show_default=True,
              help="Where accuracy measurements run: auto (dask workers; local workers when "
                   "cores // N >= 1), main (the main process, one at a time), workers.")
@click.option("--dry-run", is_flag=True,
              help="Validate the study, print the design space and an estimate of the work.")
def sweep_command(study_file: str, out_dir: str | None, workers: int, dask_address: str | None,
                  measure_on: str, dry_run: bool) -> None:
    """Run (or resume) a co-design study: block shape x compression x accelerator.

    Evaluates every design point's latency and energy (hwmodels) and GLUE accuracy (measured once
    per block shape and ratio, cached), stores each point as it finishes (re-running skips
    stored points), then writes points.csv, pareto.png/svg, speedup.png/svg and report.md.
    """
    import sys

    from codesign.study import StudyError, load_study

    try:
        study = load_study(study_file)
    except StudyError as exc:
        raise CodesignError(str(exc)) from None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI prints its own progress
    from codesign import sweep as sw

    if dry_run:
        info = sw.describe(study, out_dir, workers=workers, dask=dask_address,
                           measure_on=measure_on)
        _print_design_space(study, info)
        return
    from codesign.accuracy import AccuracyError
    from codesign.glue import GlueDataError
    from codesign.store import StoreError

    progress = sw.Progress(stream=sys.stderr)
    try:
        result = sw.run_sweep(study, out_dir, workers=workers, dask=dask_address,
                              progress=progress, measure_on=measure_on)
    except sw.SweepInterrupted as exc:
        r = exc.result
        raise CodesignError(f"interrupted: {r.n_points} point(s) stored in {r.out_dir} "
                            f"({r.n_new} new this run); run the same command again to resume")
    except (StudyError, StoreError, AccuracyError, GlueDataError) as exc:
        raise CodesignError(one_line(exc)) from None
    except (OSError, ValueError) as exc:
        raise CodesignError(f"{study_file}: {type(exc).__name__}: {one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - one line for users; the traceback on request
        import os

        if os.environ.get("CODESIGN_DEBUG"):
            raise
        raise CodesignError(f"{study_file}: internal error, {type(exc).__name__}: "
                            f"{one_line(exc)[:300]} (stored points are kept; "
                            "CODESIGN_DEBUG=1 shows the traceback)") from None
    df = result.points
    front = int(df["pareto"].sum()) if "pareto" in df else 0
    click.echo(f"{result.n_points} design points ({result.n_new} computed now, "
               f"{result.n_points - result.n_new if result.n_new <= result.n_points else 0} "
               f"from the store, {result.n_failed} failed), {result.n_accuracy_measured} "
               f"accuracy look-ups, {front} on the Pareto front, {result.seconds:.1f} s")
    click.echo(f"results in {result.out_dir}: " + ", ".join(p.name for p in result.files))


def _print_design_space(study, info: dict) -> None:
    import math

    click.echo(f"study {study.name}: {study.question}".rstrip(": "))
    click.echo(f"  model {study.model.name}, seq {study.model.seq_len}, batch "
               f"{study.model.batch}; tasks {', '.join(study.tasks)}")
    ratios = ", ".join(f"{r:g} ({1 / (1 - r):.2f}x)" for r in study.pruning.ratios)
    click.echo(f"  pruning {study.pruning.method}: blocks {', '.join(study.pruning.block_shapes)};"
               f" ratios {ratios}")
    click.echo("  " + _allocation_text(study.pruning))
    stages = " -> ".join(f"{s.fidelity}" + (f" ({s.promote})" if i else "")
                         for i, s in enumerate(study.accuracy.stages))
    click.echo(f"  accuracy: {'measured, ' + stages if study.accuracy.measure else 'not measured'}"
               f"; recipe {study.accuracy.recipe}")
    click.echo(f"  board {study.hardware.board}, {info['accelerators']} accelerator choice(s):")
    for key, values in info["swept"].items():
        click.echo(f"    {key}: {', '.join(str(v) for v in values)}")
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in study.objectives)
    click.echo(f"  objectives: {objectives}; search {study.search.method}"
               + (f" ({study.search.trials} trials)" if study.search.trials else ""))
    click.echo(f"  design points: {info['n_points']} ({info['stored']} already stored in "
               f"{info['out_dir']}); distinct (task, block, ratio, precision) accuracy "
               f"measurements: {info['accuracy_configs']} + dense")
    hw = info["hw_seconds_per_point"]
    hw_text = f"{hw * 1000:.0f} ms per hardware point (timed one)" if math.isfinite(hw) else \
        "hardware time unknown"
    acc = info["accuracy_seconds"]
    stages = ", ".join(f"~{acc[f]:.0f} s per {f} point" for f in info["fidelities"])
    dense = f"{info['dense_todo']} of {info['dense_total']} dense model(s)"
    todo = (f"to make: {info['accuracy_todo']} of {info['accuracy_total']} measurement(s) and "
            f"{dense}, the others are in the accuracy cache" if info["cache_checked"] else
            f"to make: {dense}; the points' measurements, {info['accuracy_total']}, not looked "
            "up in the cache (precision follows the hardware, or PE-balanced masks)")
    click.echo(f"  estimate: ~{info['estimate_s'] / 60:.1f} min ({todo}; accuracy spread over "
               f"{info['cores']} core(s), per measurement on one of two busy cores: "
               f"~{acc['dense']:.0f} s dense fine-tuning per task, {stages}; {hw_text})")


def _allocation_text(pruning) -> str:
    """The dry run's allocation line: the allocations, the latency-aware speedup targets and
    the PE-balance choice of the uniform points."""
    text = f"allocation {', '.join(pruning.allocation)}"
    if pruning.latency_aware:
        text += "; latency-aware speedup targets " + ", ".join(f"{t:g}x"
                                                              for t in pruning.targets)
    choices = pruning.balance_choices
    balance = {(False,): "no", (True,): "yes", (False, True): "both (swept)"}[tuple(choices)]
    if True in choices:
        balance += ", over each accelerator's PE columns"
    return f"{text}; PE-balanced blocks: {balance}"


@click.command("pareto")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--no-plots", is_flag=True, help="Only rewrite and print report.md.")
def pareto_command(results_dir: str, no_plots: bool) -> None:
    """Redraw pareto/speedup figures and report.md of a finished study in RESULTS_DIR.

    Reads RESULTS_DIR/points.csv and study.yaml only: nothing is simulated or measured again.
    """
    from codesign.report import replot

    try:
        written, text = replot(results_dir, plots=not no_plots)
    except ValueError as exc:
        raise CodesignError(one_line(exc)) from None
    click.echo(text)
    click.echo("wrote " + ", ".join(str(p) for p in written))
