"""One run of a study: evaluate design points and store each as it finishes.

What is modelled: an `Evaluation` is one (design point, accuracy fidelity, stage[, optuna trial])
to compute. The `Runner` measures accuracy once per (task, block, ratio, fidelity) (in a study
with `accuracy.seeds`: once per seed, the point's hardware simulated once they have all arrived;
codesign.sweep.seeds) (a
latency-aware point: once per (task, block, target, accelerator), in the main process; a
PE-balanced point: once per (task, block, ratio, fidelity, PE-array width)), in the
main process or, when the executor measures (`measure_on`, MEASURE_ON), on a worker, whose record
and mask file the main process writes into the accuracy cache as it arrives; then it hands the
group's hardware jobs to the executor, and writes each result to the results store
(codesign.store) as one storage operation shielded from Ctrl-C, so the store never holds half a
point. Only the main process writes the store and the accuracy cache.

What is ignored: a failed hardware evaluation (or a measurement that failed on every attempt)
is counted and stored as failed (for an optuna trial), never retried within the run.
"""
from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.accuracy.recipe import FIDELITIES
from codesign.store import ResultsStore
from codesign.study import Study, resolve
from codesign.sweep.executors import make_executor
from codesign.sweep.hardware import HardwareJob, MaskSource
from codesign.sweep.measurements import AccuracyProvider, AccuracyResult
from codesign.sweep.progress import Progress
from codesign.sweep.remote import local_measurement_threads
from codesign.sweep.records import BestTracker, build_record, constraints, objective_values
from codesign.sweep.space import DesignPoint, DesignSpace, distributions
from codesign.workload import model_config


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One design point to evaluate at one fidelity; `trial` is the asked optuna trial of a
    search (None: the grid and promotions, written as finished trials)."""

    point: DesignPoint
    fidelity: str
    stage: int = 0
    trial: Any = None


#: Where accuracy measurements run: "auto" (dask: on the workers; --workers N: in the pool when
#: the cores give each worker at least one thread, else in the main process), "main" (always
#: in the main process, one at a time: the behaviour before measurements were distributed),
#: "workers" (in the pool even when that oversubscribes the cores: one thread each).
MEASURE_ON: tuple[str, ...] = ("auto", "main", "workers")


class _Waiting:
    """What a group of evaluations still waits for on the workers: the seeds of its point not
    yet measured ({None}: an unseeded study's one measurement), its accuracy precision and PE
    columns, and whether a measurement failed (the group's points are then failed once)."""

    def __init__(self, seeds: list[int | None], precision: str, pe_columns: int | None):
        self.seeds, self.precision, self.pe_columns = set(seeds), precision, pe_columns
        self.failed = False


@dataclass(frozen=True, eq=False)
class _Measuring:
    """The tag of a measurement on a worker: the evaluations waiting for it, its dense
    checkpoint (whose path the imported record names), the group's `_Waiting` (shared by the
    tags of its seeds) and its seed (None: unseeded)."""

    group: tuple[Evaluation, ...]
    dense: Any
    waiting: _Waiting
    seed: int | None = None


def measure_threads(measure_on: str, *, workers: int, dask: str | None) -> int:
    """Threads each local pool worker gives a measurement (0: the pool does not measure)."""
    if measure_on not in MEASURE_ON:
        raise ValueError(f"measure_on {measure_on!r}: choose one of {', '.join(MEASURE_ON)}")
    if dask or workers <= 1 or measure_on == "main":
        return 0
    share = local_measurement_threads(workers)
    return max(1, share) if measure_on == "workers" else share


@contextlib.contextmanager
def shielded():
    """Defer Ctrl-C while one point is written, so the store never holds half a write."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list = []
    previous = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            raise KeyboardInterrupt


class Runner:
    """The state of one run shared by the grid, the search and the promotion stages."""

    def __init__(self, space: DesignSpace, out_dir: Path, *, workers: int, dask: str | None,
                 progress: Progress | None, cache, stop_after: int | None,
                 measure_on: str = "auto"):
        study = space.study
        self.study, self.space, self.context = study, space, space.context
        self.config = model_config(study.model.name)
        self.progress, self.stop_after = progress, stop_after
        self.workers, self.dask = workers, dask
        self.measure_threads = measure_threads(measure_on, workers=workers, dask=dask)
        self.remote_measure = measure_on != "main" and (bool(dask) or self.measure_threads > 0)
        sampler = None
        if study.search.method == "nsga2":
            import optuna

            # constraints reach NSGA-II as the trials' named constraints (optuna 5)
            sampler = optuna.samplers.NSGAIISampler(population_size=study.search.population,
                                                    seed=study.search.seed)
        self.store = ResultsStore(out_dir, study.name, [o.direction for o in study.objectives],
                                  storage=study.storage, sampler=sampler)
        self.store.fail_running()
        self.done = self.store.done(self.context)
        self.accuracy = AccuracyProvider(study, cache)
        self.executor = None  # lazily: a fully stored study starts no process, no dask client
        self.n_new = self.n_failed = 0
        self.best = BestTracker(study)
        self._dense_checked: set[tuple[str, int | None]] = set()
        self.dist = distributions(study)

    # --- what is stored -----------------------------------------------------------------------
    def cheap_fidelity(self) -> str:
        return self.study.accuracy.stages[0].fidelity if self.study.accuracy.measure else "none"

    def stored(self, point: DesignPoint, fidelity: str) -> bool:
        return self.stored_record(point, fidelity) is not None

    def stored_record(self, point: DesignPoint, fidelity: str) -> dict[str, Any] | None:
        """The stored record of `point` at `fidelity`; dense points have one accuracy whatever
        the stage, so any stored fidelity serves them."""
        rec = self.done.get((point.point_id, fidelity))
        if rec is None and point.block is None:
            rec = next((self.done[(point.point_id, f)] for f in (*FIDELITIES, "none")
                        if (point.point_id, f) in self.done), None)
        return rec

    # --- evaluating -------------------------------------------------------------------------
    def evaluate(self, evaluations: list[Evaluation]) -> None:
        """Accuracy grouped by (task, block, ratio, fidelity), in the main process or on a
        worker; each group's hardware in the executor once its accuracy is known; results
        stored as they come."""
        if self.executor is None:
            self.executor = make_executor(workers=self.workers, dask=self.dask,
                                          measure_threads=self.measure_threads)
        self._note_dense_training({ev.point.task for ev in evaluations  # masks need it too
                                   if self.study.accuracy.measure or ev.point.block is not None})
        groups: dict[tuple, list[Evaluation]] = {}
        for ev in evaluations:
            key = (ev.point.accuracy_key, ev.fidelity, self.accuracy_precision(ev.point),
                   self.balance_columns(ev.point))
            groups.setdefault(key, []).append(ev)
        for (_, _, precision, cols), group in groups.items():
            first = group[0].point
            if first.latency_aware:
                self._evaluate_allocated(group, precision)
                self._collect(block=False)
                continue
            task, block, ratio, fidelity = first.task, first.block, first.prune_ratio, \
                group[0].fidelity
            remote = self.remote_measure and self.executor.measures
            acc = self.accuracy.ready(task, block, ratio, fidelity, precision,
                                      pe_columns=cols) if remote else None
            if acc is None and self.progress and (block is not None and ratio > 0):
                where = " on a worker" if remote else ""
                at = "" if precision == "fp32" else f" at {precision}"
                bal = f" PE-balanced over {cols} columns" if cols else ""
                self.progress.note(f"accuracy {task} {block} ratio {ratio:g}{bal} ({fidelity})"
                                   f"{at}{where}")
            if acc is None and remote:
                seeds = self.accuracy.missing_seeds(task, block, ratio, fidelity, precision,
                                                    pe_columns=cols)
                waiting = _Waiting(seeds, precision, cols)
                for seed in seeds:
                    job, dense, files = self.accuracy.shipment(task, block, ratio, fidelity,
                                                               precision=precision,
                                                               pe_columns=cols, seed=seed)
                    self.executor.submit_measurement(
                        job, _Measuring(tuple(group), dense, waiting, seed), **files)
            else:
                if acc is None:
                    measured = self.accuracy.measured
                    acc = self.accuracy.get(task, block, ratio, fidelity, precision,
                                            pe_columns=cols)
                    if self.accuracy.measured > measured:
                        self._note_measured(first, fidelity, acc)
                self._submit_hardware(group, acc)
            self._collect(block=False)
        while self.executor.pending():
            self._collect(block=True)
        self._collect(block=False)

    def _note_dense_training(self, tasks: set[str]) -> None:
        """A line before a task's dense model is fine-tuned (the first measurement of a task on
        a new accuracy cache waits for it, in the main process, for minutes)."""
        if not self.progress:
            return
        for task in sorted(tasks):
            for seed in self.study.accuracy.seeds or [None]:
                if (task, seed) in self._dense_checked:
                    continue
                self._dense_checked.add((task, seed))  # looked at once per run
                if self.accuracy.dense_cached(task, seed):
                    continue
                n = self.accuracy.recipe.dense_examples
                self.progress.note(
                    f"fine-tuning the dense model of {task}"
                    + (f" at seed {seed}" if seed is not None else "")
                    + f" on {'the whole train split' if n is None else f'{n:,} examples'} "
                    "(once per accuracy cache; minutes on a CPU)")

    def _evaluate_allocated(self, group: list[Evaluation], precision: str) -> None:
        """A latency-aware group (one task, block, target and accelerator): its masks allocated
        and measured in the main process, then its hardware submitted; a measurement that fails
        (e.g. a target out of reach) fails the group's points, which a re-run retries."""
        p = group[0].point
        if self.progress:
            at = "" if precision == "fp32" else f" at {precision}"
            self.progress.note(f"accuracy {p.task} {p.block} latency-aware "
                               f"{p.speedup_target:g}x on {dict(p.hardware)}{at}")
        try:
            acc = self.accuracy.allocated(p.task, p.block, p.speedup_target,
                                          resolve(self.study, p.accelerator).accelerator,
                                          precision)
        except ValueError as exc:  # AccuracyError included
            for ev in group:
                self._failed(ev, exc)
            return
        self._submit_hardware(group, acc)

    def balance_columns(self, point: DesignPoint) -> int | None:
        """The PE columns a balanced point's masks are balanced over: its accelerator's array
        width (so accelerators of one width share the measurement); None for other points."""
        if not point.balanced:
            return None
        return int(resolve(self.study, point.accelerator).accelerator.pe_array.cols)

    def accuracy_precision(self, point: DesignPoint) -> str:
        """The precision `point`'s accuracy is measured at (the study's accuracy.precision; for
        "hardware", its accelerator's, the board's when the study does not sweep it)."""
        if self.study.accuracy.precision != "hardware":
            return self.accuracy.precision_for(None)
        return self.accuracy.precision_for(
            resolve(self.study, point.accelerator).accelerator.pe_array.precision)

    def _submit_hardware(self, group: list[Evaluation] | tuple[Evaluation, ...],
                         acc: AccuracyResult) -> None:
        for ev in group:
            self.executor.submit(self._job(ev.point, acc), (ev, acc))

    def _job(self, point: DesignPoint, acc: AccuracyResult) -> HardwareJob:
        if point.block is None:
            masks = MaskSource("none")
        elif acc.masks_path:
            masks = MaskSource("file", path=acc.masks_path)
        else:  # ratio 0 with a block shape: all blocks kept
            masks = MaskSource("dense", block=point.block)
        resolved = resolve(self.study, point.accelerator)
        return HardwareJob(config=self.config, seq_len=self.study.model.seq_len,
                           batch=self.study.model.batch, accelerator=resolved.accelerator,
                           fit=resolved.fit, engine=self.study.hardware.engine, masks=masks)

    def _collect(self, block: bool) -> None:
        for tag, hwres, exc in self.executor.drain(block):
            if isinstance(tag, _Measuring):
                self._measured(tag, hwres, exc)
                continue
            ev, acc = tag
            if hwres is None:
                self._failed(ev, exc)
            else:
                self._store(ev, acc, hwres)

    def _measured(self, tag: _Measuring, remote: Any, exc: BaseException | None) -> None:
        """A worker's measurement arrived: import it (main process only), then simulate once
        every seed of the group has arrived (a seeded study: their combined result)."""
        p, fidelity, waiting = tag.group[0].point, tag.group[0].fidelity, tag.waiting
        waiting.seeds.discard(tag.seed)
        if remote is not None:
            with shielded():  # the mask file and the cache entry together
                acc = self.accuracy.accept(p.task, p.block, p.prune_ratio, fidelity, remote,
                                           tag.dense)
            self._note_measured(p, fidelity, acc, tag.seed)
            if waiting.seeds or waiting.failed:
                return  # other seeds still measuring, or the group already failed
            if tag.seed is not None:
                acc = self.accuracy.ready(p.task, p.block, p.prune_ratio, fidelity,
                                          waiting.precision, pe_columns=waiting.pe_columns)
            self._submit_hardware(tag.group, acc)
            return
        if waiting.failed:
            return
        waiting.failed = True
        for ev in tag.group:
            self._failed(ev, exc)

    def _note_measured(self, point: DesignPoint, fidelity: str, acc: AccuracyResult,
                       seed: int | None = None) -> None:
        """One line per measurement as it arrives: its score with the dev-set interval, the
        dense model's and the seconds it took (points are stored only once their hardware is
        simulated too, so without it a long measurement stage would show no progress)."""
        if not self.progress or point.block is None or not point.prune_ratio:
            return  # the dense model and a ratio-0 point are not pruned measurements
        at = (f" seed {seed}" if seed is not None else
              f" mean of {acc.seeds} seeds" if acc.seeds > 1 else "")
        took = acc.provenance.get("seconds")
        self.progress.note(
            f"measured {point.task} {point.block} ratio {point.prune_ratio:g} ({fidelity}{at}): "
            f"{acc.metric} {acc.accuracy:.3f} [{acc.low:.3f}, {acc.high:.3f}], dense "
            f"{acc.dense:.3f}" + (f", {took:.0f} s" if took is not None else ""))

    def _failed(self, ev: Evaluation, exc: BaseException | None) -> None:
        self.n_failed += 1
        if self.progress:
            self.progress.note(f"point {ev.point.point_id} failed: {' '.join(str(exc).split())}")
        if ev.trial is not None:
            self.fail_trial(ev.trial)
        self.advance()

    def _store(self, ev: Evaluation, acc: AccuracyResult, hwres: dict[str, Any]) -> None:
        point = ev.point
        rec = build_record(self.study, point, resolved=resolve(self.study, point.accelerator),
                           acc=acc, hwres=hwres, stage=ev.stage)
        with shielded():  # the write and its bookkeeping happen together or not at all
            if ev.trial is None:
                params = point.params()
                self.store.add(rec, params={k: params[k] for k in self.dist},
                               distributions=self.dist, values=objective_values(self.study, rec),
                               constraints=constraints(self.study, rec), context=self.context)
            else:
                self._tell(ev.trial, rec)
            self.done[(point.point_id, rec["accuracy_fidelity"])] = rec
            self.n_new += 1
        self.best.note(rec)
        self.advance()
        if self.stop_after is not None and self.n_new >= self.stop_after:
            raise KeyboardInterrupt  # test hook: behaves exactly like Ctrl-C here

    # --- optuna trials of a search ------------------------------------------------------------
    def _tell(self, trial, rec: dict[str, Any]) -> None:
        self.store.tell(trial, rec, values=objective_values(self.study, rec),
                        constraints=constraints(self.study, rec), context=self.context)

    def tell_stored(self, trial, rec: dict[str, Any]) -> None:
        """Finish an asked trial with a record already stored (no new evaluation)."""
        with shielded():
            self._tell(trial, rec)

    def fail_trial(self, trial) -> None:
        with shielded():
            self.store.fail(trial)

    def advance(self) -> None:
        if self.progress:
            self.progress.advance(1, self.best.text)

    def close(self, cancel: bool = False) -> None:
        if self.executor is not None:
            self.executor.close(cancel=cancel)
            self.executor = None
