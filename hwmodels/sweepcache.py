"""Bounded caches of what does not change between design points of a sweep.

What is cached (all values are immutable once built and are returned as the very objects the
plain path would have built, so cached results are bit-identical to uncached ones):

* ``FOLDS``: a GEMM's fold structure for one pass over W (hwmodels.folds's `WsFolds` /
  `OsSlabs`: tile occupancy, compaction's packing, index layout), keyed by the mask's content
  (`mask_key`), the array shape, the dataflow, the sparse strategy, the index format, the index
  and operand bytes. It does not depend on clock, DRAM bandwidth, buffer sizes, pipeline modes or
  the energy table.
* ``SCHEDULES``: a whole op `Schedule` (adds M chunking and operand residency, which depend on
  the buffer sizes, and the pipeline's fill/drain), keyed by the op's shape, the mask's content
  and `schedule_key(acc)`: every field of the accelerator except clock (and the gather's clock
  derating), DRAM, energy table, name and source, which only enter timing and pricing, and
  `vector_overlap`, which only enters timing (fused vector work is timed over the schedules).
* ``FITS``: `hwmodels.resources.assess_fit` per accelerator.
* ``CARRIED``: `hwmodels.structure.carry_structure`'s result (the workload without the dead
  heads and neurons, and the cropped masks), keyed by the workload's ops and config and the
  masks' content; it depends on the accelerator only through whether it reads masks at all.

Keys are content keys (a 128-bit BLAKE2 digest of a mask's grid with its block and matrix
shapes), never object ids. Each cache is an LRU bounded in entries and in the bytes of the numpy
arrays it holds. `enabled(False)` (a context manager) or `set_enabled(False)` turns caching off,
which is how benchmarks/bench_speed.py measures the plain path.

Ignored: thread safety (hwmodels is single-threaded per process; each worker process has its own
caches).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

log = logging.getLogger("hwmodels")

_STATE = {"enabled": True}


def set_enabled(on: bool) -> None:
    """Turn every cache of this module on or off (off: each lookup builds afresh)."""
    _STATE["enabled"] = bool(on)


def is_enabled() -> bool:
    return _STATE["enabled"]


@contextlib.contextmanager
def enabled(on: bool) -> Iterator[None]:
    """`with enabled(False): ...` runs the block with caching off (restored afterwards)."""
    before = _STATE["enabled"]
    _STATE["enabled"] = bool(on)
    try:
        yield
    finally:
        _STATE["enabled"] = before


def nbytes_of(value: Any) -> int:
    """Bytes of the numpy arrays held by `value` (a dataclass, tuple or array), one level deep
    into dataclass fields and tuples; other objects count as 0."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(nbytes_of(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(int(v.nbytes) for v in vars(value).values() if isinstance(v, np.ndarray))
    return 0


class BoundedCache:
    """An LRU map bounded by `max_entries` and by `max_bytes` of the arrays its values hold."""

    def __init__(self, name: str, *, max_entries: int, max_bytes: int):
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value under `key`, built by `make()` on a miss (or always, when caching is off)."""
        hit = self.peek(key)
        return hit if hit is not None else self.put(key, make())

    def peek(self, key: Any) -> Any:
        """The value under `key` (a hit, as `get` counts it) or None: a miss, counted when the
        caller `put`s what it built (for callers that build many misses together). Always None
        when caching is off."""
        if not _STATE["enabled"]:
            return None
        hit = self._data.get(key)
        if hit is None:
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return hit[0]

    def put(self, key: Any, value: Any) -> Any:
        """Store `value` under `key` as a miss that `get` would have built (nothing when caching
        is off); returns `value`."""
        if not _STATE["enabled"]:
            return value
        self.misses += 1
        size = nbytes_of(value)
        data = self._data
        data[key] = (value, size)
        self._bytes += size
        while data and (len(data) > self.max_entries or self._bytes > self.max_bytes):
            _, (_, old) = data.popitem(last=False)
            self._bytes -= old
        return value

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes


FOLDS = BoundedCache("folds", max_entries=4096, max_bytes=128 << 20)
SCHEDULES = BoundedCache("schedules", max_entries=4096, max_bytes=256 << 20)
FITS = BoundedCache("fits", max_entries=1024, max_bytes=1 << 20)
CARRIED = BoundedCache("carried", max_entries=256, max_bytes=64 << 20)


def clear_all() -> None:
    """Empty every cache (benchmarks use it to time the cold path)."""
    for c in (FOLDS, SCHEDULES, FITS, CARRIED):
        c.clear()


def grid_key(grid: np.ndarray, *shape: int) -> tuple:
    """A content key of a boolean grid and the integers that give it meaning (block and matrix
    shapes): (shape..., grid shape, 128-bit BLAKE2b digest of the packed bits)."""
    g = np.ascontiguousarray(grid, dtype=bool)
    digest = hashlib.blake2b(np.packbits(g).tobytes(), digest_size=16).hexdigest()
    return (*shape, *g.shape, digest)


#: gather_derating only lowers the clock (hwmodels.resources.gather_clock_mhz), like clock_mhz
_TIMING_EXCLUDED = {"clock_mhz": 1.0, "dram": None, "energy": None, "name": "", "source": "",
                    "gather_derating": None}


def timing_key(acc: Any) -> Any:
    """The accelerator with the fields that only enter timing (clock, DRAM) and pricing (energy
    table) or labels (name, source) blanked: points with equal keys have the same schedules.
    Every other field, present or future, stays in the key (held in a `HashedKey`)."""
    return HashedKey(dataclasses.replace(acc, **_TIMING_EXCLUDED))


#: vector_overlap changes how the schedules are timed (hwmodels.engines.fusion), never a schedule
_SCHEDULE_EXCLUDED = {**_TIMING_EXCLUDED, "vector_overlap": "none"}


def schedule_key(acc: Any) -> Any:
    """`timing_key` with `vector_overlap` blanked too: accelerators with equal keys build the
    same op schedules (the key of ``SCHEDULES``)."""
    return HashedKey(dataclasses.replace(acc, **_SCHEDULE_EXCLUDED))


class HashedKey:
    """A hashable value with its hash computed once (an accelerator's hash walks every nested
    field; cache keys are hashed on every lookup). Equal when the values are equal."""

    __slots__ = ("value", "_hash")

    def __init__(self, value: Any):
        self.value = value
        self._hash = hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, HashedKey) and self._hash == other._hash
                and self.value == other.value)

    def __repr__(self) -> str:
        return f"HashedKey({self.value!r})"
