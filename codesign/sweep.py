"""The study driver: design space, accuracy per (block, ratio), hardware simulation, optuna.

What is modelled: a design point is (task, block shape, prune ratio, one accelerator choice). The
design space is enumerated deterministically (tasks x [dense baseline per accelerator + block
shapes x ratios x accelerators]) and every point is keyed by a hash of its parameters and of the
study's evaluation context (model, sequence length, batch, board, fixed overrides, engine, accuracy
recipe). Accuracy is measured once per distinct (task, block shape, ratio, fidelity) through
codesign.accuracy (itself cached on disk) and reused across every accelerator choice; the hardware
model (hwmodels.simulate) runs on the very mask file whose accuracy was measured (or on
codesign.accuracy.oneshot_masks for hardware-only studies), with the workload built by
hwmodels.bert_encoder(config, seq_len, batch, weight_names=structure.weight_name) so masks attach
by checkpoint name.

optuna is the study engine: a grid is written as finished trials with fixed parameters (no
GridSampler: it hands the same point to several workers), a search asks NSGA-II for parameters
(trial budget, constraints accuracy drop and fit) and tells it the results. Only the main process
writes the storage (codesign.store); local worker processes (concurrent.futures) or an existing
dask.distributed cluster run the pure hardware evaluations. Ctrl-C leaves the store consistent
(each point is one storage write, shielded from SIGINT) and a re-run skips stored points.

Multi-fidelity: stage 1 measures every point at a cheap fidelity (oneshot); each later stage
promotes the (task, block, ratio) configurations of points on (or near) the feasible Pareto front
to a more expensive fidelity (retrain, rgl), re-simulates them on the new masks and stores the new
evaluation next to the old one; a point's row shows its most expensive evaluation and names it.

What is ignored: accuracy measurements are not distributed (they run in the main process, one at
a time, while the workers simulate); hardware evaluation errors mark a point failed (retried on
the next run) rather than stopping the sweep.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from codesign.study import Study, board_overrides, fit_of
from codesign.workload import model_config

DENSE = "dense"
# hardware keys of the study file -> column names of points.csv
HW_COLUMNS = {"pe_array": "array"}


# --- design points ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DesignPoint:
    """One design point; `hardware` holds the accelerator choice as sorted (key, value) pairs."""

    task: str
    block_shape: str  # "16x16" or "dense"
    prune_ratio: float
    hardware: tuple[tuple[str, Any], ...]
    point_id: str

    @property
    def hw(self) -> dict[str, Any]:
        return dict(self.hardware)

    @property
    def accuracy_key(self) -> tuple[str, str, float]:
        return (self.task, self.block_shape, self.prune_ratio)

    def params(self) -> dict[str, Any]:
        """Flat parameters (points.csv names)."""
        out: dict[str, Any] = {"task": self.task, "block_shape": self.block_shape,
                               "prune_ratio": self.prune_ratio}
        for key, value in self.hardware:
            out[hw_column(key)] = value
        return out


def hw_column(key: str) -> str:
    if key.startswith("buffers_kib."):
        return f"buffer_{key.split('.', 1)[1]}_kib"
    return HW_COLUMNS.get(key, key)


def _hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def context_of(study: Study) -> dict[str, Any]:
    """Everything besides a point's own parameters that changes its results."""
    return {"model": study.model.name, "seq_len": study.model.seq_len,
            "batch": study.model.batch, "board": study.hardware.board,
            "overrides": study.hardware.overrides, "engine": study.hardware.engine,
            "method": study.pruning.method,
            "recipe": study.accuracy.recipe if study.accuracy.measure else None,
            "measure": study.accuracy.measure}


def context_hash(study: Study) -> str:
    return _hash(context_of(study))


def make_point(study: Study, task: str, block_shape: str, ratio: float,
               hw: dict[str, Any], context: str | None = None) -> DesignPoint:
    """A design point with its id; the dense baseline has ratio 0 and no sparse strategy."""
    hw = dict(hw)
    if block_shape == DENSE:
        ratio = 0.0
        hw["sparse_strategy"] = DENSE
    ratio = round(float(ratio), 6)
    hardware = tuple(sorted(hw.items()))
    pid = _hash({"context": context or context_hash(study), "task": task,
                 "block_shape": block_shape, "prune_ratio": ratio, "hardware": hardware})
    return DesignPoint(task, block_shape, ratio, hardware, pid)


def enumerate_points(study: Study) -> list[DesignPoint]:
    """The grid, deterministic: per task, the dense baseline of each accelerator, then block
    shapes x ratios x accelerators. Duplicates (e.g. one baseline for several strategies) are
    removed keeping the first."""
    ctx = context_hash(study)
    combos = study.hardware.combinations()
    points: list[DesignPoint] = []
    seen: set[str] = set()

    def add(p: DesignPoint) -> None:
        if p.point_id not in seen:
            seen.add(p.point_id)
            points.append(p)

    for task in study.tasks:
        for hw in combos:
            add(make_point(study, task, DENSE, 0.0, hw, ctx))
        for block in study.pruning.block_shapes:
            for ratio in study.pruning.ratios:
                for hw in combos:
                    add(make_point(study, task, block, ratio, hw, ctx))
    return points


# --- the pure hardware evaluation (runs in workers) ---------------------------------------------
@functools.lru_cache(maxsize=16)
def _load_mask_file(path: str):
    from codesign.masks import load_masks

    return load_masks(path).masks


def _workload(spec: dict[str, Any], mask_names: Iterable[str] | None):
    from codesign.workload import encoder_workload

    return encoder_workload(spec["config"], spec["seq_len"], spec["batch"],
                            mask_names=mask_names)


def _weight_ops(workload) -> list:
    return [op for op in workload.ops if getattr(op, "weight_name", None)]


def _dense_masks(workload, block: tuple[int, int]) -> dict[str, Any]:
    """All-kept masks of a block shape (compression 1x: the sparse format's cost only)."""
    import hwmodels

    out = {}
    for op in _weight_ops(workload):
        # parameter orientation (out, in) = (N, K)
        out[op.weight_name] = hwmodels.BlockMask.dense(block, (op.n, op.k))
    return out


def evaluate_hardware(spec: dict[str, Any], masks: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate one design point; a pure function of its arguments (safe for any worker).

    spec: config, seq_len, batch, board, overrides, engine, sparse_strategy, masks (a dict
    {"kind": "none"|"dense"|"file", "block", "path"}); `masks` given explicitly (dask: a
    scattered dict of BlockMask) replaces the mask file.
    Returns the hardware columns of points.csv.
    """
    import hwmodels

    source = spec["masks"]
    if masks is None and source["kind"] == "file":
        masks = _load_mask_file(source["path"])
    workload = _workload(spec, list(masks) if masks else None)
    if source["kind"] == "dense":
        masks = _dense_masks(workload, hwmodels.BlockShape.parse(source["block"]))
    from hwmodels.boards import load_board

    acc = load_board(spec["board"], spec["overrides"], check_fit=False)
    report = hwmodels.simulate(workload, acc, masks=masks or None, engine=spec["engine"])
    fit = fit_of(acc)
    res = report.resources or fit.resources
    kept = total = 0.0
    if masks:
        for m in masks.values():
            size = float(m.matrix_shape[0] * m.matrix_shape[1])
            total += size
            kept += m.density * size
    compression = total / kept if kept > 0 else (1.0 if not masks else math.inf)
    latency = float(report.latency_ms)
    return {
        "latency_ms": latency,
        "energy_mj": float(report.energy_mj),
        "throughput_inf_s": spec["batch"] * 1000.0 / latency if latency > 0 else math.nan,
        "utilization": float(report.utilization),
        "dsp_fraction": _fraction(res, "dsp"),
        "bram_fraction": _fraction(res, "bram"),
        "fits": bool(fit.fits),
        "compression": compression,
        "hw_source": f"simulated:{report.engine}/{report.engine_version}",
        "total_cycles": float(report.total_cycles),
        "dram_bytes": float(report.dram_bytes),
    }


def _fraction(resources: dict[str, Any], prefix: str) -> float:
    best = math.nan
    for name, entry in resources.items():
        if str(name).lower().startswith(prefix):
            frac = entry.get("fraction") if isinstance(entry, dict) else getattr(
                entry, "fraction", None)
            if frac is not None:
                best = float(frac) if math.isnan(best) else max(best, float(frac))
    return best


def _evaluate_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Process-pool entry point (masks are read from their file inside the worker)."""
    return evaluate_hardware(spec)


# --- accuracy -------------------------------------------------------------------------------------
def _recipe(study: Study):
    from codesign.study import build_recipe

    return build_recipe(study.accuracy.recipe)


@dataclass(frozen=True)
class AccuracyResult:
    """The accuracy of one (task, block, ratio) at one fidelity, with its mask file."""

    accuracy: float
    metric: str
    dense: float
    fidelity: str
    source: str
    masks_path: str | None
    provenance: dict[str, Any]


class AccuracyProvider:
    """Measures (or looks up) accuracy and mask files; one measurement per key per run."""

    def __init__(self, study: Study, cache=None):
        self.study = study
        self._cache = cache
        self._memo: dict[tuple, AccuracyResult] = {}
        self.measured = 0  # how many calls went to codesign.accuracy this run

    def _cache_obj(self):
        if self._cache is None:
            from codesign.accuracy import AccuracyCache

            self._cache = AccuracyCache()
        return self._cache

    def get(self, task: str, block: str, ratio: float, fidelity: str) -> AccuracyResult:
        key = (task, block, ratio, fidelity)
        if key in self._memo:
            return self._memo[key]
        from codesign import accuracy

        study = self.study
        block_shape = None if block == DENSE or ratio == 0 else block
        if not study.accuracy.measure:
            path = None
            if block_shape is not None:
                path = str(accuracy.oneshot_masks(study.model.name, task, block_shape, ratio,
                                                  _recipe(study), glue_dir=study.glue_dir,
                                                  cache=self._cache_obj()))
            result = AccuracyResult(math.nan, "", math.nan, "none", "none", path,
                                    {"masks": path or DENSE})
        else:
            fid = "oneshot" if block_shape is None else fidelity
            rec = accuracy.measure(study.model.name, task, block_shape, 0.0 if block_shape is
                                   None else ratio, fid, _recipe(study),
                                   glue_dir=study.glue_dir, cache=self._cache_obj())
            self.measured += 1
            prov = {"source": rec.source, "fidelity": rec.fidelity, "recipe": rec.recipe,
                    "seconds": rec.seconds, "key": rec.key, "masks_path":
                    str(rec.masks_path) if rec.masks_path else None}
            result = AccuracyResult(float(rec.pruned), rec.metric, float(rec.dense),
                                    rec.fidelity if block_shape is not None else fidelity,
                                    rec.source, prov["masks_path"] if block_shape else None,
                                    prov)
        self._memo[key] = result
        return result


# --- progress -----------------------------------------------------------------------------------
class Progress:
    """Design points done, ETA and the current best: a tqdm bar on a terminal, plain lines
    (every `every_s` seconds and at the end) otherwise. Created by the CLI (libraries do not
    print); `run_sweep` only calls it."""

    def __init__(self, stream=None, every_s: float = 10.0, force_plain: bool = False):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not force_plain
        self.every_s = every_s
        self._bar = None
        self._t0 = time.monotonic()
        self._last = 0.0
        self.total = 0
        self.done = 0
        self.best = ""

    def start(self, total: int, initial: int = 0, desc: str = "points") -> None:
        self.total, self.done = total, initial
        self._t0 = time.monotonic()
        self._initial = initial
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="pt",
                             file=self.stream, dynamic_ncols=True)
        else:
            self.stream.write(f"{desc}: {initial}/{total} already stored\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def advance(self, n: int = 1, best: str = "") -> None:
        self.done += n
        self.best = best or self.best
        if self._bar is not None:
            self._bar.update(n)
            if self.best:
                self._bar.set_postfix_str("best " + self.best, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            rate = (self.done - self._initial) / max(now - self._t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else math.nan
            # points arrive in bursts after each accuracy measurement: no ETA from the first few
            enough = self.done - self._initial >= max(3, 0.05 * (self.total - self._initial))
            eta = f"{left:.0f}s" if math.isfinite(left) and enough else "?"
            self.stream.write(f"{self.done}/{self.total} points, ETA {eta}"
                              f"{', best ' + self.best if self.best else ''}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --- executors ----------------------------------------------------------------------------------
class _Inline:
    """workers=1: evaluate in the main process, in submission order."""

    def __init__(self):
        self._results: list = []

    def submit(self, spec, tag):
        try:
            self._results.append((tag, evaluate_hardware(spec), None))
        except Exception as exc:  # noqa: BLE001 - a failed point is recorded, not fatal
            self._results.append((tag, None, exc))

    def drain(self, block: bool = False):
        out, self._results = self._results, []
        return out

    def pending(self) -> int:
        return 0

    def close(self, cancel: bool = False):
        pass


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops cleanly and owns the store."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Pool:
    """--workers N: a spawn-context process pool (fork after torch threads can deadlock)."""

    def __init__(self, workers: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        self._cf = cf
        self._pool = cf.ProcessPoolExecutor(max_workers=workers,
                                            mp_context=mp.get_context("spawn"),
                                            initializer=_ignore_sigint)
        self._futures: dict = {}

    def submit(self, spec, tag):
        self._futures[self._pool.submit(_evaluate_from_spec, spec)] = tag

    def drain(self, block: bool = False):
        if not self._futures:
            return []
        done, _ = self._cf.wait(list(self._futures), timeout=None if block else 0,
                                return_when=self._cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            tag = self._futures.pop(fut)
            exc = fut.exception()
            out.append((tag, None if exc else fut.result(), exc))
        return out

    def pending(self) -> int:
        return len(self._futures)

    def close(self, cancel: bool = False):
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class _Dask:
    """--dask ADDRESS: hardware evaluations on an existing dask.distributed cluster. Mask sets
    are scattered once each, so remote workers need no shared file system."""

    def __init__(self, address: str):
        from distributed import Client

        self._client = Client(address, set_as_default=False, timeout="30s")
        self._futures: dict = {}
        self._scattered: dict[str, Any] = {}

    def submit(self, spec, tag):
        masks = None
        if spec["masks"]["kind"] == "file":
            path = spec["masks"]["path"]
            if path not in self._scattered:
                # scatter a one-element list: scattering the dict itself would make one future
                # per weight name, keyed by that name, so two mask sets would collide
                self._scattered[path] = self._client.scatter([_load_mask_file(path)],
                                                             hash=False)[0]
            masks = self._scattered[path]
        fut = self._client.submit(evaluate_hardware, spec, masks, pure=False)
        self._futures[fut] = tag

    def drain(self, block: bool = False):
        if not self._futures:
            return []
        # poll (distributed.wait needs a default client; ours is private to this sweep)
        while block and not any(f.done() for f in self._futures):
            time.sleep(0.005)
        out = []
        for fut in [f for f in self._futures if f.done()]:
            tag = self._futures.pop(fut)
            if fut.status == "error":
                out.append((tag, None, fut.exception()))
            else:
                out.append((tag, fut.result(), None))
            fut.release()
        return out

    def pending(self) -> int:
        return len(self._futures)

    def close(self, cancel: bool = False):
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures))
        finally:
            self._client.close()


# --- SIGINT shielding ---------------------------------------------------------------------------
@contextlib.contextmanager
def _shielded():
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


# --- the sweep ----------------------------------------------------------------------------------
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


def _constraints(study: Study, rec: dict[str, Any]) -> dict[str, float]:
    """optuna's named constraints, feasible <= 0: accuracy drop over the limit (points), board
    fit (an unknown accuracy counts as feasible: hardware-only studies)."""
    out = {}
    limit = study.constraints.max_accuracy_drop
    if limit is not None:
        drop = rec.get("accuracy_drop")
        out["accuracy_drop"] = float(drop) - limit if drop is not None and math.isfinite(
            drop) else 0.0
    out["fits"] = 0.0 if rec.get("fits", True) or not study.constraints.fits_board else 1.0
    return out


def feasible(study: Study, rec: dict[str, Any]) -> bool:
    return all(c <= 0 for c in _constraints(study, rec).values())


def _values(study: Study, rec: dict[str, Any]) -> list[float]:
    out = []
    for o in study.objectives:
        v = rec.get(o.metric)
        out.append(math.nan if v is None else float(v))
    return out


def _distributions(study: Study, include_dense: bool = True) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    dist = {"task": CategoricalDistribution(list(study.tasks)),
            "block_shape": CategoricalDistribution(
                ([DENSE] if include_dense else []) + list(study.pruning.block_shapes)),
            "prune_ratio": CategoricalDistribution(sorted(set([0.0] + study.pruning.ratios)))}
    for key, values in study.hardware.swept().items():
        choices = list(values)
        if key == "sparse_strategy":
            choices = [DENSE] + choices
        dist[hw_column(key)] = CategoricalDistribution(choices)
    return dist


class _Runner:
    """One run of a study (state shared by the grid and search paths)."""

    def __init__(self, study: Study, out_dir: Path, workers: int, dask: str | None,
                 progress: Progress | None, cache, stop_after: int | None):
        from codesign.store import ResultsStore

        self.study = study
        self.out_dir = out_dir
        self.context = context_hash(study)
        self.config = model_config(study.model.name)
        self.progress = progress
        self.stop_after = stop_after
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
        self.workers = workers
        self.dask = dask
        self.executor = None
        self.n_new = 0
        self.n_failed = 0
        self.best_text = ""
        self._best_value: float | None = None
        self.dist = _distributions(study)

    # executor lazily: a fully stored study never starts processes or connects to dask
    def _executor(self):
        if self.executor is None:
            if self.dask:
                self.executor = _Dask(self.dask)
            elif self.workers > 1:
                self.executor = _Pool(self.workers)
            else:
                self.executor = _Inline()
        return self.executor

    def _spec(self, point: DesignPoint, acc: AccuracyResult) -> dict[str, Any]:
        hw = point.hw
        if point.block_shape == DENSE:
            masks = {"kind": "none"}
        elif acc.masks_path:
            masks = {"kind": "file", "path": acc.masks_path}
        else:  # ratio 0 with a block shape: all blocks kept
            masks = {"kind": "dense", "block": point.block_shape}
        return {"config": self.config, "seq_len": self.study.model.seq_len,
                "batch": self.study.model.batch, "board": self.study.hardware.board,
                "overrides": board_overrides(self.study, hw), "engine": self.study.hardware.engine,
                "sparse_strategy": hw.get("sparse_strategy", "tile-skip"), "masks": masks}

    def _record(self, point: DesignPoint, acc: AccuracyResult, hwres: dict[str, Any],
                stage: int) -> dict[str, Any]:
        study = self.study
        rec: dict[str, Any] = {"point_id": point.point_id, "task": point.task,
                               "model": study.model.name, "seq_len": study.model.seq_len,
                               "batch": study.model.batch, "board": study.hardware.board}
        rec.update(point.params())
        rec["sparse_strategy"] = point.hw.get("sparse_strategy", "tile-skip")
        rec.update({k: v for k, v in hwres.items() if k != "hw_source"})
        drop = 100.0 * (acc.dense - acc.accuracy) if math.isfinite(acc.accuracy) else math.nan
        rec.update({"accuracy": acc.accuracy, "accuracy_metric": acc.metric,
                    "accuracy_dense": acc.dense, "accuracy_drop": drop,
                    "accuracy_fidelity": acc.fidelity, "accuracy_source": acc.source,
                    "hw_source": hwres["hw_source"], "stage": stage})
        rec["provenance"] = json.dumps({"accuracy": acc.provenance,
                                        "hardware": {"source": hwres["hw_source"],
                                                     "board": study.hardware.board,
                                                     "overrides": board_overrides(study,
                                                                                  point.hw)}},
                                       sort_keys=True, default=str)
        rec["feasible"] = feasible(study, rec)
        return rec

    def _note_best(self, rec: dict[str, Any]) -> None:
        if not rec.get("feasible"):
            return
        obj = self.study.objectives[0]
        v = rec.get(obj.metric)
        if v is None or not math.isfinite(v):
            return
        better = self._best_value is None or (v < self._best_value if obj.direction == "min"
                                              else v > self._best_value)
        if better:
            self._best_value = v
            self.best_text = (f"{obj.metric}={v:.4g} ({rec['block_shape']} "
                              f"x{rec['compression']:.2f} {rec.get('array', '')} "
                              f"{rec.get('dataflow', '')} {rec['sparse_strategy']})")

    def _store(self, point: DesignPoint, acc: AccuracyResult, hwres: dict[str, Any] | None,
               exc: BaseException | None, stage: int, trial_number: int | None = None) -> None:
        if hwres is None:
            self.n_failed += 1
            if self.progress:
                self.progress.note(f"point {point.point_id} failed: {' '.join(str(exc).split())}")
            if trial_number is not None:
                import optuna

                with _shielded():
                    self.store.study.tell(trial_number, state=optuna.trial.TrialState.FAIL)
            if self.progress:
                self.progress.advance(1, self.best_text)
            return
        rec = self._record(point, acc, hwres, stage)
        with _shielded():  # the write and its bookkeeping happen together or not at all
            if trial_number is None:
                self.store.add(rec, self._params(point), self.dist, _values(self.study, rec),
                               _constraints(self.study, rec), self.context)
            else:
                self.store.tell(trial_number, rec, _values(self.study, rec),
                                _constraints(self.study, rec), self.context)
            self.done[(point.point_id, rec["accuracy_fidelity"])] = rec
            self.n_new += 1
        self._note_best(rec)
        if self.progress:
            self.progress.advance(1, self.best_text)
        if self.stop_after is not None and self.n_new >= self.stop_after:
            raise KeyboardInterrupt  # test hook: behaves exactly like Ctrl-C here

    def _params(self, point: DesignPoint) -> dict[str, Any]:
        p = point.params()
        return {k: p[k] for k in self.dist}

    def _collect(self, block: bool) -> None:
        for (point, acc, stage, tn), hwres, exc in self._executor().drain(block):
            self._store(point, acc, hwres, exc, stage, tn)

    def evaluate(self, jobs: list[tuple[DesignPoint, str, int, int | None]]) -> None:
        """Evaluate (point, fidelity, stage, trial number) jobs: accuracy in the main process
        grouped by accuracy key, hardware in the executor, results stored as they come."""
        ex = self._executor()
        order: dict[tuple, list] = {}
        for job in jobs:
            order.setdefault(job[0].accuracy_key + (job[1],), []).append(job)
        for key, group in order.items():
            task, block, ratio, fidelity = key
            if self.progress and (block != DENSE and ratio > 0):
                self.progress.note(f"accuracy {task} {block} ratio {ratio:g} ({fidelity})")
            acc = self.accuracy.get(task, block, ratio, fidelity)
            for point, fid, stage, tn in group:
                ex.submit(self._spec(point, acc), (point, acc, stage, tn))
            self._collect(block=False)
        while ex.pending():
            self._collect(block=True)
        self._collect(block=False)

    def cheap_fidelity(self) -> str:
        return self.study.accuracy.stages[0].fidelity if self.study.accuracy.measure else "none"

    def stored(self, point: DesignPoint, fidelity: str) -> bool:
        if (point.point_id, fidelity) in self.done:
            return True
        # dense points have one accuracy whatever the stage
        return point.block_shape == DENSE and any(
            (point.point_id, f) in self.done for f in ("oneshot", "retrain", "rgl", "none"))

    # --- grid -------------------------------------------------------------------------------
    def run_grid(self, points: list[DesignPoint]) -> None:
        fid = self.cheap_fidelity()
        todo = [(p, fid, 0, None) for p in points if not self.stored(p, fid)]
        if self.progress:
            self.progress.start(len(points), len(points) - len(todo), "stage 1 " + fid)
        self.evaluate(todo)
        if self.progress:
            self.progress.close()

    # --- NSGA-II ------------------------------------------------------------------------------
    def run_search(self) -> None:
        budget = self.study.search.trials or 0
        fid = self.cheap_fidelity()
        already = self.store.n_trials(self.context)
        if self.progress:
            self.progress.start(budget, min(already, budget), "nsga2 " + fid)
        batch = max(1, self.workers if not self.dask else 2 * max(self.workers, 2))
        while already < budget:
            jobs = []
            for _ in range(min(batch, budget - already)):
                trial = self.store.study.ask(self.dist)
                p = trial.params
                hw = {}
                for key in self.study.hardware.swept():
                    hw[key] = p[hw_column(key)]
                block = p["block_shape"]
                if p["prune_ratio"] == 0.0 and 0.0 not in self.study.pruning.ratios:
                    block = DENSE  # ratio 0 is in the space only for the dense baselines
                if hw.get("sparse_strategy") == DENSE and block != DENSE:
                    hw["sparse_strategy"] = self.study.hardware.swept()["sparse_strategy"][0]
                point = make_point(self.study, p["task"], block, p["prune_ratio"], hw,
                                   self.context)
                key = (point.point_id, fid)
                if self.stored(point, fid):
                    rec = self.done.get(key) or next(
                        self.done[(point.point_id, f)] for f in ("oneshot", "retrain", "rgl",
                                                                 "none")
                        if (point.point_id, f) in self.done)
                    with _shielded():
                        self.store.tell(trial.number, rec, _values(self.study, rec),
                                        _constraints(self.study, rec), self.context)
                    if self.progress:
                        self.progress.advance(1, self.best_text)
                else:
                    jobs.append((point, fid, 0, trial.number))
                already += 1
            # two asks of one batch may name the same point: evaluate it once, tell both
            first: dict[str, int] = {}
            dupes = []
            unique = []
            for job in jobs:
                if job[0].point_id in first:
                    dupes.append(job)
                else:
                    first[job[0].point_id] = job[3]
                    unique.append(job)
            self.evaluate(unique)
            for point, f, stage, tn in dupes:
                rec = self.done.get((point.point_id, f))
                import optuna

                with _shielded():
                    if rec is None:
                        self.store.study.tell(tn, state=optuna.trial.TrialState.FAIL)
                    else:
                        self.store.tell(tn, rec, _values(self.study, rec),
                                        _constraints(self.study, rec), self.context)
                if self.progress:
                    self.progress.advance(1, self.best_text)
        if self.progress:
            self.progress.close()
        # the dense baseline of every accelerator visited (for speedups)
        seen = {}
        for rec in self.store.records(self.context):
            hw = {k: rec[hw_column(k)] for k in self.study.hardware.swept()}
            p = make_point(self.study, rec["task"], DENSE, 0.0, hw, self.context)
            seen.setdefault(p.point_id, p)
        todo = [(p, fid, 0, None) for p in seen.values() if not self.stored(p, fid)]
        self.evaluate(todo)

    # --- promotion --------------------------------------------------------------------------
    def promote(self, points_of_config: Callable[[tuple], list[DesignPoint]]) -> None:
        stages = self.study.accuracy.stages if self.study.accuracy.measure else []
        for stage_no, stage in enumerate(stages[1:], start=1):
            # the choice depends only on the cheaper evaluations, so a re-run (which also has
            # this stage's results stored) promotes exactly the same configurations
            recs = self.store.records(self.context, below=stage.fidelity)
            chosen = select_promoted(self.study, recs, stage.promote, stage.tolerance,
                                     stage.max_configs)
            jobs = []
            for cfg in chosen:
                for p in points_of_config(cfg):
                    if not self.stored(p, stage.fidelity):
                        jobs.append((p, stage.fidelity, stage_no, None))
            if self.progress:
                self.progress.note(f"stage {stage_no + 1}: promoting {len(chosen)} "
                                   f"(task, block, ratio) to {stage.fidelity}: "
                                   f"{len(jobs)} points")
                self.progress.start(len(jobs), 0, f"stage {stage_no + 1} {stage.fidelity}")
            self.evaluate(jobs)
            if self.progress:
                self.progress.close()

    def close(self, cancel: bool = False) -> None:
        if self.executor is not None:
            self.executor.close(cancel=cancel)
            self.executor = None


def select_promoted(study: Study, records: list[dict[str, Any]], how: str, tolerance: float,
                    max_configs: int | None) -> list[tuple[str, str, float]]:
    """(task, block, ratio) of the sparse points on (or within `tolerance`, in objective ranges
    normalised to [0, 1], of) the Pareto front of the points that fit the board, per task;
    nearest first, then the smallest excess over the accuracy-drop limit, then the best first
    objective (so `max_configs` keeps the likeliest to end up feasible and fast)."""
    import numpy as np

    from codesign.store import records_frame

    if how == "all":
        cfgs = {(r["task"], r["block_shape"], r["prune_ratio"]) for r in records
                if r["block_shape"] != DENSE and r["prune_ratio"] > 0}
        return sorted(cfgs)[:max_configs] if max_configs else sorted(cfgs)
    if not records:
        return []
    df = records_frame(records)
    objs = study.objective_pairs
    scored: dict[tuple, float] = {}
    limit = study.constraints.max_accuracy_drop
    for task, sub in df.groupby("task", sort=True):
        # candidates must fit the board; the accuracy constraint does not gate promotion, since
        # the more expensive fidelity is what may bring a point within it
        if study.constraints.fits_board:
            sub = sub[sub["fits"].astype(bool)]
        if sub.empty:
            continue
        mask = pareto_mask(sub, objs)
        vals = np.column_stack([sub[m].to_numpy(dtype=float) * (1 if d == "min" else -1)
                                for m, d in objs])
        lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        norm = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)
        front = norm[mask]
        for i, (_, row) in enumerate(sub.iterrows()):
            if row["block_shape"] == DENSE or row["prune_ratio"] <= 0:
                continue
            if mask[i]:
                dist = 0.0
            elif how == "near-front" and len(front):
                # distance to being non-dominated: how far it is behind the nearest front point
                behind = np.maximum(norm[i] - front, 0.0).max(axis=1)
                dist = float(np.nanmin(behind))
                if not dist <= tolerance:
                    continue
            else:
                continue
            cfg = (task, row["block_shape"], float(row["prune_ratio"]))
            # closest to the accuracy limit first (most likely to become feasible), then the
            # best first objective
            drop = float(row.get("accuracy_drop", math.nan))
            excess = max(0.0, drop - limit) if limit is not None and math.isfinite(drop) else 0.0
            score = (dist, excess, float(norm[i][0]))
            scored[cfg] = min(scored.get(cfg, (math.inf, math.inf, math.inf)), score)
    chosen = sorted(scored, key=lambda c: (scored[c], c))
    return chosen[:max_configs] if max_configs else chosen


def pareto_mask(df, objectives: Sequence[tuple[str, str]]):
    """codesign.pareto.pareto_mask (the shared definition of the front)."""
    from codesign.pareto import pareto_mask as _pm

    return _pm(df, objectives)


def points_table(study: Study, records: list[dict[str, Any]]):
    """The points table with the `pareto` column (feasible rows only, per task)."""
    import numpy as np

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


def run_sweep(study: Study, out_dir: str | Path | None = None, *, workers: int = 1,
              dask: str | None = None, progress: Progress | None = None, cache=None,
              stop_after: int | None = None, write: bool = True) -> SweepResult:
    """Run (or resume) a study; returns its points. On Ctrl-C raises SweepInterrupted after
    exporting what is stored. `stop_after` (tests) interrupts after that many new points."""
    t0 = time.monotonic()
    out = study.output_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runner = _Runner(study, out, max(1, int(workers)), dask, progress, cache, stop_after)
    points = enumerate_points(study) if study.search.method == "grid" else []
    by_config: dict[tuple, list[DesignPoint]] = {}
    for p in points:
        by_config.setdefault(p.accuracy_key, []).append(p)
    interrupted = False
    try:
        if study.search.method == "grid":
            runner.run_grid(points)
        else:
            runner.run_search()
            for rec in runner.store.records(runner.context):
                hw = {k: rec[hw_column(k)] for k in study.hardware.swept()}
                p = make_point(study, rec["task"], rec["block_shape"], rec["prune_ratio"], hw,
                               runner.context)
                by_config.setdefault(p.accuracy_key, [])
                if p not in by_config[p.accuracy_key]:
                    by_config[p.accuracy_key].append(p)
        runner.promote(lambda cfg: by_config.get(cfg, []))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress:
            progress.close()
        runner.close(cancel=interrupted)
    ids = [p.point_id for p in points] if points else None
    records = runner.store.records(runner.context, ids)
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


# --- dry run ------------------------------------------------------------------------------------
def accuracy_seconds(study: Study) -> dict[str, float]:
    """Rough wall time of one accuracy measurement per fidelity on 2 CPU cores, scaled from the
    figures codesign.accuracy documents for its default recipe (dense fine-tuning of 2,000
    examples ~50 s, dev evaluation ~5 s, masked retraining of 512 examples ~15 s) plus ~10 s of
    model loading per measurement. An estimate for the dry run, not a measurement."""
    try:
        from codesign.study import build_recipe

        r = build_recipe(study.accuracy.recipe)
    except Exception:  # noqa: BLE001
        return {"dense": 120.0, "oneshot": 10.0, "retrain": 30.0, "rgl": 60.0}
    seq = r.max_seq_len / 64.0
    ev = 5.0 * (r.eval_examples or 872) / 872 * seq
    dense = 50.0 * (r.dense_examples or 67349) / 2000 * r.dense_epochs * seq + ev + 10.0
    retrain = 15.0 * (r.retrain_examples or 67349) / 512 * r.retrain_epochs * seq
    rgl = 15.0 * (r.rgl_examples or 67349) / 512 * r.rgl_epochs * seq
    return {"dense": dense, "oneshot": ev + 5.0, "retrain": ev + 5.0 + retrain,
            "rgl": ev + 5.0 + retrain + rgl}


def describe(study: Study, out_dir: str | Path | None = None,
             time_one: bool = True) -> dict[str, Any]:
    """What a sweep would do: the design space, how much is stored already, an estimate."""
    points = enumerate_points(study) if study.search.method == "grid" else []
    out = study.output_dir(out_dir)
    stored = 0
    ctx = context_hash(study)
    if (out / "optuna.journal").exists() or study.storage:
        try:
            from codesign.store import ResultsStore

            store = ResultsStore(out, study.name, [o.direction for o in study.objectives],
                                 storage=study.storage)
            done = {pid for pid, _ in store.done(ctx)}
            stored = sum(1 for p in points if p.point_id in done) if points else len(done)
        except Exception:  # noqa: BLE001 - a dry run only reports
            stored = 0
    combos = study.hardware.combinations()
    n_acc = len(study.tasks) * len(study.pruning.block_shapes) * len(
        [r for r in study.pruning.ratios if r > 0])
    hw_seconds = math.nan
    if time_one and combos:
        try:
            cfg = model_config(study.model.name)
            spec = {"config": cfg, "seq_len": study.model.seq_len, "batch": study.model.batch,
                    "board": study.hardware.board, "overrides": board_overrides(study, combos[0]),
                    "engine": study.hardware.engine, "sparse_strategy": DENSE,
                    "masks": {"kind": "none"}}
            t = time.perf_counter()
            evaluate_hardware(spec)
            hw_seconds = time.perf_counter() - t
        except Exception:  # noqa: BLE001
            hw_seconds = math.nan
    n_points = len(points) if points else (study.search.trials or 0)
    secs = accuracy_seconds(study)
    est = len(study.tasks) * secs["dense"]
    if study.accuracy.measure:
        est += min(n_acc, n_points) * secs[study.accuracy.stages[0].fidelity]
        for st in study.accuracy.stages[1:]:
            k = st.max_configs or max(1, n_acc // 4)
            est += min(k, n_acc) * secs[st.fidelity]
    else:
        est += n_acc * 5.0
    if math.isfinite(hw_seconds):
        est += (n_points - stored) * hw_seconds * 2.0  # sparse points cost more than dense
    return {"points": points, "n_points": n_points, "stored": stored,
            "accelerators": len(combos), "swept": study.hardware.swept(),
            "accuracy_configs": n_acc, "hw_seconds_per_point": hw_seconds,
            "accuracy_seconds": secs,
            "estimate_s": est, "out_dir": out}
