"""The dry run: what a sweep would do and a rough estimate of its wall time.

What is modelled: the design space's size, how much of it is stored already, the time of one
hardware evaluation (timed), accuracy measurement times scaled from codesign.accuracy's
documented figures, spread over the cores that measure, and the measurements the accuracy cache
holds already (the dense models, and each stage's (task, block, ratio) points where the study's
accuracy has one precision and no PE-balanced masks; otherwise every point counts as to be
measured). What is ignored: machine load, how many cores a dask cluster has (taken as this
machine's), which points a later stage will promote (the cached ones at its fidelity are taken
to be them, as they are on a re-run), and seeds partly cached (a point counts as cached when
every seed is).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from codesign.accuracy.recipe import Recipe
from codesign.pruning.batching import default_threads
from codesign.study import Study, resolve
from codesign.sweep.hardware import HardwareJob, MaskSource, evaluate_hardware
from codesign.sweep.space import DesignSpace
from codesign.workload import model_config


def accuracy_seconds(study: Study) -> dict[str, float]:
    """Rough wall time of one accuracy measurement per fidelity on one of two busy cores (two
    measurements side by side at one thread each: on 2 cores the same throughput as one at a
    time on both, 2026-11-30: a calibrated 16x16 point took 36.6 s alone at 2 threads, 55.5 s
    alone at 1, and the headline study's took 76 s each two at a time), scaled from the
    figures codesign.accuracy documents for its default recipe (dense fine-tuning of 2,000
    examples ~50 s, dev evaluation ~5 s per 872 sentences) plus ~10 s of model loading per
    measurement; a calibrated point ~39 s per 256 sentences of Fisher scores plus ~39 s per
    1,024 sentences of re-fit (the headline study's 25 calibrated points at the default 256 /
    1,024, 2026-11-29: 78 s each on average, 58-129 s, one thread each, two at a time, load ~2);
    masked retraining ~16 s per 1,000 examples plus two evaluations of the held-out sentences
    (its 10 retrainings of 4,000 examples, 2026-11-29: 143 s each on average with their
    calibrated start, same conditions). An estimate for the dry run, not a measurement."""
    try:
        r = Recipe.from_spec(study.accuracy.recipe)
    except Exception:  # noqa: BLE001
        return {"dense": 120.0, "oneshot": 10.0, "calibrated": 160.0, "retrain": 30.0,
                "rgl": 60.0}
    seq = r.max_seq_len / 64.0
    ev = 5.0 * (r.eval_examples or 872) / 872 * seq
    dense = 50.0 * (r.dense_examples or 67349) / 2000 * r.dense_epochs * seq + ev + 10.0
    retrain = 16.0 * (r.retrain_examples or 67349) / 1000 * r.retrain_epochs * seq
    check = 2 * 5.0 * r.recovery_holdout / 872 * seq if r.retrain_examples else 0.0
    rgl = 15.0 * (r.rgl_examples or 67349) / 512 * r.rgl_epochs * seq
    calib = r.calib_examples or 67349
    fisher = min(r.calib_fisher_examples or calib, calib) if r.calib_saliency == "fisher" else calib
    calibrated = (39.0 * fisher / 256 + 39.0 * calib / 1024) * seq
    start = calibrated if r.retrain_start == "calibrated" else 0.0
    return {"dense": dense, "oneshot": ev + 5.0, "calibrated": ev + 5.0 + calibrated,
            "retrain": ev + 5.0 + start + retrain + check, "rgl": ev + 5.0 + retrain + rgl}


def describe(study: Study, out_dir: str | Path | None = None, time_one: bool = True, *,
             workers: int = 1, dask: str | None = None, measure_on: str = "auto",
             cache=None) -> dict[str, Any]:
    """What a sweep would do: the design space, how much is stored already, how much accuracy
    work `cache` (an AccuracyCache; None: the default one) holds, and an estimate of the wall
    time with `workers`, `dask` and `measure_on` as `run_sweep` takes them."""
    space = DesignSpace.of(study)
    points = space.points() if study.search.method == "grid" else []
    out = study.output_dir(out_dir)
    stored = _stored(study, out, space.context, points)
    n_acc = len(study.tasks) * len(study.pruning.block_shapes) * len(
        [r for r in study.pruning.ratios if r > 0]) * _accuracy_precisions(study) \
        * _balance_variants(study, space)
    # latency-aware points: one calibrated measurement per (task, block, target, accelerator)
    n_aware = len(study.tasks) * len(study.pruning.block_shapes) * len(
        study.pruning.targets) * len(space.choices)
    hw_seconds = _time_one(study, space) if time_one and space.choices else math.nan
    n_points = len(points) if points else (study.search.trials or 0)
    secs = accuracy_seconds(study)
    seeds = len(study.accuracy.seeds or [None])  # accuracy.seeds: every measurement per seed
    cached = cached_accuracy(study, cache)
    dense_total = len(study.tasks) * seeds
    dense_todo = dense_total - cached["dense"]
    work = dense_todo * secs["dense"]  # seconds of measurements on one of two busy cores
    todo, total = {}, n_aware  # measurements per fidelity to make; all of them
    if study.accuracy.measure:
        for i, st in enumerate(study.accuracy.stages):
            k = min(n_acc, n_points) if i == 0 else min(st.max_configs or max(1, n_acc // 4),
                                                        n_acc)
            total += k
            todo[st.fidelity] = todo.get(st.fidelity, 0) + max(
                0, k - cached["points"].get(st.fidelity, 0))
        work += seeds * sum(n * secs[f] for f, n in todo.items())
    else:
        work += seeds * n_acc * 5.0
    work += seeds * n_aware * secs["calibrated"]
    cores = measuring_cores(workers=workers, dask=dask, measure_on=measure_on)
    est = work / cores
    if math.isfinite(hw_seconds):
        est += (n_points - stored) * hw_seconds * 2.0  # sparse points cost more than dense
    return {"points": points, "n_points": n_points, "stored": stored,
            "accelerators": len(space.choices), "swept": study.hardware.swept(),
            "accuracy_configs": n_acc + n_aware, "seeds": seeds,
            "hw_seconds_per_point": hw_seconds,
            "accuracy_seconds": secs, "cores": cores, "dense_todo": dense_todo,
            "accuracy_todo": sum(todo.values()) + n_aware, "accuracy_total": total,
            "dense_total": dense_total, "cache_checked": cached["checked"],
            "fidelities": [st.fidelity for st in study.accuracy.stages]
            if study.accuracy.measure else [],
            "estimate_s": est, "out_dir": out}


def measuring_cores(*, workers: int, dask: str | None, measure_on: str) -> int:
    """The cores the accuracy measurements of a run keep busy: the local pool's workers times
    their threads when the pool measures, else this machine's (`default_threads`: the main
    process measures on all of them; a dask cluster's size is not known here)."""
    from codesign.sweep.runner import measure_threads

    threads = measure_threads(measure_on, workers=workers, dask=dask)
    return max(1, workers * threads if threads else default_threads())


def cached_accuracy(study: Study, cache=None) -> dict[str, Any]:
    """What the accuracy cache holds of the study's work: `dense`, how many of its (task, seed)
    dense models; `points`, per stage fidelity, how many of its (task, block, ratio) points
    have every seed's record (`checked` False, `points` empty: not looked up, for a study whose
    accuracy precision follows the hardware, with PE-balanced masks, or not measured).
    Nothing is measured or written."""
    from codesign.sweep.measurements import AccuracyProvider

    provider = AccuracyProvider(study, cache)
    dense = sum(provider.dense_cached(task, seed) for task in study.tasks
                for seed in (study.accuracy.seeds or [None]))
    checked = (study.accuracy.measure and study.accuracy.precision != "hardware"
               and True not in study.pruning.balance_choices)
    points: dict[str, int] = {}
    if checked:
        from hwmodels import BlockShape

        precision = provider.precision_for(None)
        for st in study.accuracy.stages:
            points[st.fidelity] = sum(
                provider.ready(task, BlockShape.parse(block), ratio, st.fidelity,
                               precision) is not None
                for task in study.tasks for block in study.pruning.block_shapes
                for ratio in study.pruning.ratios if ratio > 0)
    return {"dense": dense, "points": points, "checked": bool(checked)}


def _balance_variants(study: Study, space: DesignSpace) -> int:
    """How many masks each (task, block, ratio) has: one unbalanced (unless the study has only
    balanced points) plus one balanced per distinct PE-array width of its accelerators."""
    choices = study.pruning.balance_choices
    if True not in choices:
        return 1
    try:
        widths = {resolve(study, c).accelerator.pe_array.cols for c in space.choices}
    except Exception:  # noqa: BLE001 - a dry run only estimates
        widths = set(range(len(space.choices)))
    return (False in choices) + len(widths)


def _accuracy_precisions(study: Study) -> int:
    """How many precisions each (task, block, ratio) is measured at: one, unless the accuracy
    follows the accelerator's precision (`accuracy.precision: hardware`) and that is swept."""
    if study.accuracy.precision != "hardware":
        return 1
    from hwmodels.accelerator import PRECISION_ALIASES

    values = study.hardware.swept().get("precision") or [None]
    return len({PRECISION_ALIASES.get(v, v) for v in values})


def _stored(study: Study, out: Path, context: str, points: list) -> int:
    """How many of the points (or, for a search, of the trials) the store holds already."""
    if not ((out / "optuna.journal").exists() or study.storage):
        return 0
    try:
        from codesign.store import ResultsStore

        store = ResultsStore(out, study.name, [o.direction for o in study.objectives],
                             storage=study.storage)
        done = {pid for pid, _ in store.done(context)}
        return sum(1 for p in points if p.point_id in done) if points else len(done)
    except Exception:  # noqa: BLE001 - a dry run only reports
        return 0


def _time_one(study: Study, space: DesignSpace) -> float:
    """Seconds of one dense hardware evaluation on the first accelerator choice (NaN if it
    fails)."""
    try:
        resolved = resolve(study, space.choices[0])
        job = HardwareJob(config=model_config(study.model.name), seq_len=study.model.seq_len,
                          batch=study.model.batch, accelerator=resolved.accelerator,
                          fit=resolved.fit, engine=study.hardware.engine,
                          masks=MaskSource("none"))
        t = time.perf_counter()
        evaluate_hardware(job)
        return time.perf_counter() - t
    except Exception:  # noqa: BLE001
        return math.nan
