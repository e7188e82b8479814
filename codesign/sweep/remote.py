"""Accuracy measurements away from the main process: a local worker process or a dask worker.

What is modelled: a `MeasureJob` is one (task, block, ratio, fidelity, precision[, PE balance])
of a study whose dense model the main process has already fine-tuned (through the normal
cache); the worker measures at the job's precision (fp32, or fake-quantized at a hardware
precision such as w8a8, calibrated on the same seeded training sentences as in the main
process) and PE balance (its masks balanced over `pe_columns`), so its record and key
are those a main-process measurement writes. The job runs
`run_measure_job` wherever it lands: in a private temporary accuracy cache, seeded with the dense
checkpoint (and the teacher logits cached for it) and the task's GLUE files, handed over either
as bytes (`files_as_bytes`: a dask worker needs no shared file system) or as paths on the same
machine (`files_on_disk`: a local worker process links them). It returns a `RemoteMeasurement`
(the record and its mask file's bytes); only the main process writes them into its cache
(`codesign.accuracy.measurement.import_measurement`), so a worker that dies mid-measurement
leaves nothing behind and its point is simply measured again.

Threads: each measurement runs at `job.threads` torch threads (and ``$CODESIGN_THREADS``), or,
when the job names none (dask), the worker's ``$CODESIGN_THREADS``, else its CPUs divided by its
dask thread slots. On a CPU the same seed at the same thread count gives the same result as a
local run, bit for bit; the device is whatever the measurement code picks (cuda when the worker
has one; the record's ``device`` says which).

What is ignored: teacher logits a worker computes are not sent back (the next job that needs
them computes them again on its worker); the GLUE files are not hashed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bytes by relative path, or (local root folder, relative paths to link from it)
Files = Mapping[str, bytes] | tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class MeasureJob:
    """One accuracy measurement to run elsewhere; `model_sha256` spares the worker the base
    checkpoint; `threads` None lets the worker choose (see the module docstring)."""

    model: str
    model_sha256: str
    task: str
    block: str
    ratio: float
    fidelity: str
    recipe: Any  # codesign.accuracy.recipe.Recipe (frozen)
    threads: int | None = None
    #: the precision to measure at (codesign.accuracy.quantize.accuracy_precision: fp32 or a
    #: canonical hardware precision)
    precision: str = "fp32"
    scratch_dir: str | None = None  # parent of the private cache (None: the system's temp)
    #: PE-balanced masks over this many PE columns (codesign.pruning.balance); None: unbalanced
    pe_columns: int | None = None


@dataclass(frozen=True)
class RemoteMeasurement:
    """What a worker sends back: the record (paths in its private cache) and the mask bytes."""

    record: Any  # codesign.accuracy.cache.AccuracyRecord
    masks_bytes: bytes | None


def cache_relpaths(cache_root: Path, dense_path: Path) -> tuple[str, ...]:
    """The files of a dense checkpoint and of the teacher logits cached for it, relative to the
    cache root: what a worker's private cache needs to measure on that checkpoint."""
    rels = [p.relative_to(cache_root) for p in sorted(dense_path.rglob("*")) if p.is_file()]
    teacher = cache_root / "teacher"
    if teacher.is_dir():
        rels += [p.relative_to(cache_root) for p in sorted(teacher.glob(f"{dense_path.name}-*"))
                 if p.is_file() and not p.name.startswith(".tmp-")]
    return tuple(str(r) for r in rels)


def glue_relpaths(glue_root: Path, task: str) -> tuple[str, ...]:
    """The task's train and dev files, relative to the GLUE folder."""
    from codesign.glue import get_task, split_path

    spec = get_task(task)
    return tuple(str(split_path(glue_root, spec, s).relative_to(glue_root))
                 for s in ("train", "dev"))


def files_on_disk(root: Path, rels: tuple[str, ...]) -> Files:
    """Files handed over by path (a worker on this machine links them; absolute, since a
    link to a relative path would point inside the worker's temporary folder)."""
    return (str(Path(root).resolve()), tuple(rels))


def files_as_bytes(root: Path, rels: tuple[str, ...]) -> dict[str, bytes]:
    """Files handed over as bytes (a worker on another machine writes them)."""
    return {rel: (root / rel).read_bytes() for rel in rels}


def _materialise(files: Files, dest: Path) -> None:
    """Place `files` under `dest`: write the bytes, or symlink the local files (read only)."""
    if isinstance(files, tuple):
        root, rels = files
        for rel in rels:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(root) / rel, dest / rel)
        return
    for rel, data in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)


def worker_threads(job_threads: int | None) -> int:
    """Torch threads for one measurement: the job's, else ``$CODESIGN_THREADS`` of this
    process, else its CPUs divided by its dask thread slots (1 outside dask)."""
    from codesign.pruning.batching import THREADS_ENV, default_threads

    if job_threads:
        return int(job_threads)
    if os.environ.get(THREADS_ENV, "").strip():
        return default_threads()
    slots = 1
    with contextlib.suppress(ImportError, ValueError, AttributeError):
        from distributed import get_worker

        slots = max(1, int(get_worker().state.nthreads))
    return max(1, default_threads() // slots)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """``$CODESIGN_THREADS`` and torch's intra-op threads at `count` for the duration."""
    from codesign.pruning.batching import THREADS_ENV, torch_threads

    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(count)
    try:
        with torch_threads(count):
            yield
    finally:
        if previous is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = previous


def run_measure_job(job: MeasureJob, cache_files: Files, glue_files: Files) -> RemoteMeasurement:
    """Measure `job` in a private temporary cache seeded with `cache_files` (paths relative to a
    cache root) and `glue_files` (relative to a GLUE folder); the record and mask bytes. The
    temporary folder is removed whatever happens. The worker function of both executors."""
    from codesign.accuracy.cache import AccuracyCache, remember_model_sha256
    from codesign.accuracy.measurement import measure_with_masks
    from codesign.pruning.balance import PEBalance

    remember_model_sha256(job.model, job.model_sha256)
    balance = PEBalance(job.pe_columns) if job.pe_columns else None
    with tempfile.TemporaryDirectory(prefix="codesign-measure-", dir=job.scratch_dir) as tmp:
        root = Path(tmp)
        _materialise(cache_files, root / "cache")
        _materialise(glue_files, root / "glue")
        cache = AccuracyCache(root / "cache")
        with _threads(worker_threads(job.threads)):
            record, data = measure_with_masks(job.model, job.task, job.block, job.ratio,
                                              job.fidelity, job.recipe, glue_dir=root / "glue",
                                              cache=cache, precision=job.precision,
                                              balance=balance)
    return RemoteMeasurement(record, data)


def local_measurement_threads(workers: int) -> int:
    """Each local worker's thread share for measurements, cores // workers, where cores is
    ``$CODESIGN_THREADS`` or the CPUs this process may use; 0 when that share is below one
    thread (then measurements stay in the main process, one at a time)."""
    from codesign.pruning.batching import default_threads

    return default_threads() // max(1, int(workers))
