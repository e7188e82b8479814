"""Where evaluations run: inline, a local process pool, or a dask.distributed cluster.

Every executor takes (job, tag) pairs and hands back (tag, result, exception) triples as they
finish; the tag stays in the main process. Hardware jobs go to `submit` and wait there for the
next `drain`, which sends the jobs of each mask set as batches (`evaluate_hardware_chunk`: one
in the main process, chunks in the pool and on dask, and in the main process while the pool
measures); the pool and dask also
take accuracy measurements (`submit_measurement`, codesign.sweep.remote), the inline executor
does not (`measures` is False: the main process measures). A dask measurement whose worker dies
is re-run by the scheduler; one that fails otherwise (or whose shipped files were lost with
their worker) is submitted again, up to `MEASURE_ATTEMPTS` times in all.

What is ignored: retries of hardware evaluations (a failed evaluation is reported, stored as
failed, and retried on the next run of the sweep).
"""
from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from codesign.sweep import remote
from codesign.sweep.hardware import (HardwareJob, batch_key, evaluate_hardware_chunk,
                                     load_mask_file)
from codesign.sweep.remote import MeasureJob

log = logging.getLogger("codesign")
MEASURE_ATTEMPTS = 3  # a dask measurement is tried at most this often before its points fail
HARDWARE_CHUNK = 64  # hardware jobs per pool or dask task (one mask set, one batch)


def _mask_set_chunks(queue: list[tuple[HardwareJob, Any]],
                     parts: int) -> Iterator[list[tuple[HardwareJob, Any]]]:
    """The queued (job, tag) pairs of each mask set (equal `batch_key`), in `parts` chunks of at
    most `HARDWARE_CHUNK` jobs each."""
    groups: dict[tuple, list[tuple[HardwareJob, Any]]] = {}
    for item in queue:
        groups.setdefault(batch_key(item[0]), []).append(item)
    for items in groups.values():
        size = min(HARDWARE_CHUNK, -(-len(items) // parts))
        for a in range(0, len(items), size):
            yield items[a:a + size]


def _chunk_results(tags: list[Any], results: list | None, exc: BaseException | None) -> list:
    """(tag, columns, exception) per job of a chunk; a chunk that failed as a whole (its worker
    died, or it was cancelled) fails every point of it."""
    if exc is not None:
        return [(t, None, exc) for t in tags]
    return [(t, res, err) for t, (res, err) in zip(tags, results)]


def _evaluate_here(queue: list[tuple[HardwareJob, Any]]) -> list:
    """(tag, columns, exception) per queued job, simulated in this process as one batch
    (`evaluate_hardware_chunk` groups the jobs by mask set itself)."""
    return _chunk_results([tag for _, tag in queue],
                          evaluate_hardware_chunk([job for job, _ in queue]), None)


class InlineExecutor:
    """workers=1: evaluate in the main process, in submission order. Jobs queue until the next
    `drain`, which simulates them as one batch (`evaluate_hardware_chunk`: the jobs of one mask
    set share their schedules; a failure is recorded against its own point)."""

    measures = False

    def __init__(self):
        self._queue: list[tuple[HardwareJob, Any]] = []

    def submit(self, job: HardwareJob, tag: Any) -> None:
        self._queue.append((job, tag))

    def drain(self, block: bool = False) -> list:
        queue, self._queue = self._queue, []
        return _evaluate_here(queue) if queue else []

    def pending(self) -> int:
        return len(self._queue)

    def close(self, cancel: bool = False) -> None:
        self._queue = []


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops cleanly and owns the store."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PoolExecutor:
    """--workers N: a spawn-context process pool (fork after torch threads can deadlock).
    `measure_threads` > 0: measurements run in the pool at that many threads each. Hardware
    jobs queue until the next `drain`; then the jobs of each mask set go to the workers in N
    chunks of at most `HARDWARE_CHUNK` jobs, each simulated as one batch
    (`evaluate_hardware_chunk`). While a measurement is running or waiting in the pool, the
    main process simulates them itself, as the inline executor does: the pool runs its jobs in
    order, so they would wait behind measurements of minutes each, and the points whose
    accuracy is known would be stored only at the end of the accuracy stage (a mask set's
    hardware is a fraction of a second; the results are the same either way)."""

    def __init__(self, workers: int, measure_threads: int = 0):
        import concurrent.futures as cf
        import multiprocessing as mp

        self._cf = cf
        self._pool = cf.ProcessPoolExecutor(max_workers=workers,
                                            mp_context=mp.get_context("spawn"),
                                            initializer=_ignore_sigint)
        self._futures: dict = {}  # future -> tag, or a list of tags (a chunk of hardware jobs)
        self._queue: list[tuple[HardwareJob, Any]] = []
        self._ready: list = []  # (tag, result, exception) simulated in the main process
        self.workers = workers
        self.measure_threads = measure_threads
        self.measures = measure_threads > 0
        self._scratch: str | None = None  # the measurements' temporary folders, removed at close

    def submit(self, job: HardwareJob, tag: Any) -> None:
        self._queue.append((job, tag))

    def _measuring(self) -> bool:
        """Whether a measurement is running or waiting in the pool."""
        return any(not isinstance(tag, list) and not fut.done()
                   for fut, tag in self._futures.items())

    def _flush(self) -> None:
        """The queued hardware jobs to the pool, in chunks of one mask set each; or, while the
        pool measures, simulated here and now."""
        queue, self._queue = self._queue, []
        if self._measuring():
            self._ready.extend(_evaluate_here(queue))
            return
        for chunk in _mask_set_chunks(queue, self.workers):
            fut = self._pool.submit(evaluate_hardware_chunk, [job for job, _ in chunk])
            self._futures[fut] = [tag for _, tag in chunk]

    def submit_measurement(self, job: MeasureJob, tag: Any, *, cache_root: Path,
                           cache_rels: tuple[str, ...], glue_root: Path,
                           glue_rels: tuple[str, ...]) -> None:
        """Measure in a worker process; the files are linked from this machine's folders."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="codesign-pool-")
        job = replace(job, threads=self.measure_threads, scratch_dir=self._scratch)
        fut = self._pool.submit(remote.run_measure_job, job,
                                remote.files_on_disk(cache_root, cache_rels),
                                remote.files_on_disk(glue_root, glue_rels))
        self._futures[fut] = tag

    def drain(self, block: bool = False) -> list:
        if self._queue:
            self._flush()
        out, self._ready = self._ready, []
        if not self._futures:
            return out
        done, _ = self._cf.wait(list(self._futures),
                                timeout=None if block and not out else 0,
                                return_when=self._cf.FIRST_COMPLETED)
        for fut in done:
            tag = self._futures.pop(fut)
            exc = fut.exception()
            if isinstance(tag, list):  # a chunk of hardware jobs
                out.extend(_chunk_results(tag, None if exc else fut.result(), exc))
            else:  # a measurement
                out.append((tag, None if exc else fut.result(), exc))
        return out

    def pending(self) -> int:
        return len(self._futures) + len(self._queue) + len(self._ready)

    def close(self, cancel: bool = False) -> None:
        """Wait for running jobs; on cancel (Ctrl-C) a pool that measures stops its workers
        instead (a measurement may run for minutes; it writes only its own temporary folder,
        under the pool's scratch folder, removed here)."""
        self._queue, self._ready = [], []
        try:
            if not (cancel and self.measures):
                self._pool.shutdown(wait=True, cancel_futures=cancel)
                return
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.join(timeout=10)
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)


class DaskExecutor:
    """--dask ADDRESS: hardware evaluations and accuracy measurements on an existing
    dask.distributed cluster. Mask sets, dense checkpoints and GLUE files are scattered once
    each, so remote workers need no shared file system."""

    measures = True

    def __init__(self, address: str):
        from distributed import Client

        self._client = Client(address, set_as_default=False, timeout="30s")
        self._futures: dict = {}  # future -> tag, or a list of tags (a chunk of hardware jobs)
        self._queue: list[tuple[HardwareJob, Any]] = []
        self._scattered: dict[Any, Any] = {}
        self._retry: dict = {}  # measurement future -> (job, files, attempts so far)

    def _scatter(self, key: Any, make) -> Any:
        """One future per shipped object; scattered again when its worker lost it."""
        fut = self._scattered.get(key)
        if fut is None or fut.status != "finished":
            # scatter a one-element list: scattering a dict itself would make one future
            # per key, keyed by that key, so two sets would collide
            fut = self._scattered[key] = self._client.scatter([make()], hash=False)[0]
        return fut

    def submit(self, job: HardwareJob, tag: Any) -> None:
        self._queue.append((job, tag))

    def _flush(self) -> None:
        """The queued hardware jobs to the cluster: each mask set's jobs in chunks of at most
        `HARDWARE_CHUNK`, each one batch with the set's masks, scattered once."""
        queue, self._queue = self._queue, []
        for chunk in _mask_set_chunks(queue, 1):
            source, masks = chunk[0][0].masks, None
            if source.kind == "file":
                path = source.path
                masks = self._scatter(("masks", path), lambda: load_mask_file(path))
            fut = self._client.submit(evaluate_hardware_chunk, [job for job, _ in chunk], masks,
                                      pure=False)
            self._futures[fut] = [tag for _, tag in chunk]

    def submit_measurement(self, job: MeasureJob, tag: Any, *, cache_root: Path,
                           cache_rels: tuple[str, ...], glue_root: Path,
                           glue_rels: tuple[str, ...], attempts: int = 0) -> None:
        """Measure on a worker; the dense checkpoint and GLUE files travel as bytes."""
        files = dict(cache_root=cache_root, cache_rels=cache_rels, glue_root=glue_root,
                     glue_rels=glue_rels)
        cache = self._scatter(("cache", str(cache_root), cache_rels),
                              lambda: remote.files_as_bytes(cache_root, cache_rels))
        glue = self._scatter(("glue", str(glue_root), glue_rels),
                             lambda: remote.files_as_bytes(glue_root, glue_rels))
        fut = self._client.submit(remote.run_measure_job, job, cache, glue, pure=False)
        self._futures[fut] = tag
        self._retry[fut] = (job, files, attempts + 1)

    def drain(self, block: bool = False) -> list:
        if self._queue:
            self._flush()
        if not self._futures:
            return []
        # poll (distributed.wait needs a default client; ours is private to this sweep)
        while block and not any(f.done() for f in self._futures):
            time.sleep(0.005)
        out = []
        for fut in [f for f in self._futures if f.done()]:
            tag = self._futures.pop(fut)
            retry = self._retry.pop(fut, None)
            if isinstance(tag, list):  # a chunk of hardware jobs
                ok = fut.status == "finished"
                out.extend(_chunk_results(tag, fut.result() if ok else None,
                                          None if ok else _exception_of(fut)))
            elif fut.status == "finished":
                out.append((tag, fut.result(), None))
            else:
                exc = _exception_of(fut)
                if retry is not None and retry[2] < MEASURE_ATTEMPTS:
                    log.warning("accuracy measurement failed on a worker (%s); submitting it "
                                "again", " ".join(str(exc).split()) or type(exc).__name__)
                    self.submit_measurement(retry[0], tag, **retry[1], attempts=retry[2])
                else:
                    out.append((tag, None, exc))
            fut.release()
        return out

    def pending(self) -> int:
        return len(self._futures) + len(self._queue)

    def close(self, cancel: bool = False) -> None:
        self._queue = []
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures))
        finally:
            self._client.close()


def _exception_of(fut: Any) -> BaseException:
    """The exception of a failed or cancelled dask future."""
    try:
        exc = fut.exception()
    except BaseException as err:  # noqa: BLE001 - a cancelled future raises its reason
        return err
    return exc if exc is not None else RuntimeError(f"dask task {fut.key}: {fut.status}")


def make_executor(*, workers: int, dask: str | None, measure_threads: int = 0):
    """The executor for a run: dask when an address is given, else a pool for workers > 1
    (measuring in the pool at `measure_threads` each when > 0)."""
    if dask:
        return DaskExecutor(dask)
    if workers > 1:
        return PoolExecutor(workers, measure_threads)
    return InlineExecutor()
