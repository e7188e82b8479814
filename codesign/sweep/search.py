"""The two ways through the design space: the full grid, and an NSGA-II search with a budget.

What is modelled: the grid evaluates every enumerated point not yet stored at the first stage's
fidelity. The search asks optuna's NSGA-II sampler for parameters in batches (the trial budget
counts stored trials, so a re-run spends only what is left), tells it each result with its
constraint values, and afterwards evaluates the dense baseline of every accelerator visited (for
the speedups). Two asks of one batch that name the same point are evaluated once.

What is ignored: GridSampler (it hands one point to several workers); the grid is written as
finished trials with fixed parameters instead.
"""
from __future__ import annotations

from typing import Any, Mapping

from codesign.sweep.runner import Evaluation, Runner
from codesign.sweep.space import DENSE, DesignPoint, DesignSpace, hw_column


def run_grid(runner: Runner, points: list[DesignPoint]) -> None:
    """Evaluate the grid's points that the store does not hold yet."""
    fid = runner.cheap_fidelity()
    todo = [Evaluation(p, fid) for p in points if not runner.stored(p, fid)]
    if runner.progress:
        runner.progress.start(len(points), len(points) - len(todo), "stage 1 " + fid)
    runner.evaluate(todo)
    if runner.progress:
        runner.progress.close()


def point_of_params(space: DesignSpace, params: Mapping[str, Any]) -> DesignPoint:
    """The design point of an optuna trial's parameters (points.csv column names)."""
    study = space.study
    swept = study.hardware.swept()
    hw = {key: params[hw_column(key)] for key in swept}
    block = params["block_shape"]
    if params["prune_ratio"] == 0.0 and 0.0 not in study.pruning.ratios:
        block = DENSE  # ratio 0 is in the space only for the dense baselines
    if hw.get("sparse_strategy") == DENSE and block != DENSE:
        hw["sparse_strategy"] = swept["sparse_strategy"][0]
    # a study of balanced points only balances every sparse point, whatever was sampled
    choices = study.pruning.balance_choices
    balanced = bool(params.get("balanced", False)) if len(choices) > 1 else choices[0]
    return space.point(params["task"], space.shape_of(block), params["prune_ratio"],
                       space.choice_of(hw), balanced=balanced)


def run_search(runner: Runner) -> None:
    """NSGA-II over the space until the trial budget is spent, then the dense baselines."""
    budget = runner.study.search.trials or 0
    fid = runner.cheap_fidelity()
    already = runner.store.n_trials(runner.context)
    if runner.progress:
        runner.progress.start(budget, min(already, budget), "nsga2 " + fid)
    batch = max(1, runner.workers if not runner.dask else 2 * max(runner.workers, 2))
    while already < budget:
        todo: list[Evaluation] = []
        for _ in range(min(batch, budget - already)):
            trial = runner.store.study.ask(runner.dist)
            point = point_of_params(runner.space, trial.params)
            rec = runner.stored_record(point, fid)
            if rec is not None:
                runner.tell_stored(trial, rec)
                runner.advance()
            else:
                todo.append(Evaluation(point, fid, 0, trial))
            already += 1
        _evaluate_batch(runner, todo)
    if runner.progress:
        runner.progress.close()
    # the dense baseline of every accelerator visited (for speedups)
    seen: dict[str, DesignPoint] = {}
    for rec in runner.store.records(runner.context):
        p = runner.space.point_of_record(rec, dense=True)
        seen.setdefault(p.point_id, p)
    runner.evaluate([Evaluation(p, fid) for p in seen.values() if not runner.stored(p, fid)])


def _evaluate_batch(runner: Runner, todo: list[Evaluation]) -> None:
    """Evaluate a batch of asked trials; a point asked twice is evaluated once, told twice."""
    first: set[str] = set()
    unique, dupes = [], []
    for ev in todo:
        (dupes if ev.point.point_id in first else unique).append(ev)
        first.add(ev.point.point_id)
    runner.evaluate(unique)
    for ev in dupes:
        rec = runner.done.get((ev.point.point_id, ev.fidelity))
        if rec is None:
            runner.fail_trial(ev.trial)
        else:
            runner.tell_stored(ev.trial, rec)
        runner.advance()
