"""Where hardware evaluations run: inline, a local process pool, or a dask.distributed cluster.

Every executor takes (job, tag) pairs and hands back (tag, result, exception) triples as they
finish; the tag stays in the main process. What is ignored: retries (a failed evaluation is
reported, stored as failed, and retried on the next run of the sweep).
"""
from __future__ import annotations

import signal
import time
from typing import Any

from codesign.sweep.hardware import HardwareJob, evaluate_hardware, load_mask_file


class InlineExecutor:
    """workers=1: evaluate in the main process, in submission order."""

    def __init__(self):
        self._results: list = []

    def submit(self, job: HardwareJob, tag: Any) -> None:
        try:
            self._results.append((tag, evaluate_hardware(job), None))
        except Exception as exc:  # noqa: BLE001 - a failed point is recorded, not fatal
            self._results.append((tag, None, exc))

    def drain(self, block: bool = False) -> list:
        out, self._results = self._results, []
        return out

    def pending(self) -> int:
        return 0

    def close(self, cancel: bool = False) -> None:
        pass


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops cleanly and owns the store."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PoolExecutor:
    """--workers N: a spawn-context process pool (fork after torch threads can deadlock)."""

    def __init__(self, workers: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        self._cf = cf
        self._pool = cf.ProcessPoolExecutor(max_workers=workers,
                                            mp_context=mp.get_context("spawn"),
                                            initializer=_ignore_sigint)
        self._futures: dict = {}

    def submit(self, job: HardwareJob, tag: Any) -> None:
        self._futures[self._pool.submit(evaluate_hardware, job)] = tag

    def drain(self, block: bool = False) -> list:
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

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class DaskExecutor:
    """--dask ADDRESS: hardware evaluations on an existing dask.distributed cluster. Mask sets
    are scattered once each, so remote workers need no shared file system."""

    def __init__(self, address: str):
        from distributed import Client

        self._client = Client(address, set_as_default=False, timeout="30s")
        self._futures: dict = {}
        self._scattered: dict[str, Any] = {}

    def submit(self, job: HardwareJob, tag: Any) -> None:
        masks = None
        if job.masks.kind == "file":
            path = job.masks.path
            if path not in self._scattered:
                # scatter a one-element list: scattering the dict itself would make one future
                # per weight name, keyed by that name, so two mask sets would collide
                self._scattered[path] = self._client.scatter([load_mask_file(path)],
                                                             hash=False)[0]
            masks = self._scattered[path]
        fut = self._client.submit(evaluate_hardware, job, masks, pure=False)
        self._futures[fut] = tag

    def drain(self, block: bool = False) -> list:
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

    def close(self, cancel: bool = False) -> None:
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures))
        finally:
            self._client.close()


def make_executor(*, workers: int, dask: str | None):
    """The executor for a run: dask when an address is given, else a pool for workers > 1."""
    if dask:
        return DaskExecutor(dask)
    if workers > 1:
        return PoolExecutor(workers)
    return InlineExecutor()
