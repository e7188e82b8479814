"""Event engine: a tile/fold-level discrete-event simulation with simpy (the reference).

Processes and resources, per op (ops run one after another; the pipeline drains between ops):
* DMA engine: one simpy PriorityResource; a transfer of B bytes holds it B / bandwidth cycles.
  Transfers are served earliest-deadline first: a load's priority is the fold that needs it; a
  store's is the fold that needs its output-buffer slot back (the first fold of the tile after
  next with double buffering). A tile's store is split into as many chunks as the tile had
  folds, so writes fill the gaps between reads the way a shared read/write DRAM channel would
  instead of blocking a prefetch for the whole store.
* Weight buffer and input buffer: each a Container of 2 slots with double buffering (ping-pong
  halves), 1 without. A weight/input loader process takes a slot, transfers, and signals the
  array; the slot is freed when the last fold using that data finishes (the folds up to the next
  load of the same operand). An operand that stays resident in its buffer (the whole of it fits)
  needs no slots when double buffering is on: its loads run ahead as far as the DMA allows
  (without double buffering every load waits for the previous fold, so everything serialises).
* Output buffer: a Container of 2 (1) slots. A fold that opens an output tile takes one; it is
  given back when the tile's store has left through the DMA.
* PE array (or vector unit): waits for its fold's weights and inputs and an output slot, holds the
  array for stream + fill + index cycles, frees its input slots and spawns its tile's store.
One event group per fold, never per cycle. The time each GEMM fold leaves the array is kept
(`Timing.fold_end_cycles`): fused vector work (hwmodels.engines.fusion) is released at them.

Differences from the analytical engine by design: the analytical engine takes the midpoint of
an unbounded-prefetch and a one-fold-ahead bound, here the ping-pong halves bound the prefetch
to one weight tile and one input block ahead and a store chunk already started delays a load (no
preemption). Compute, fill/drain, bytes and energy are identical (same fold list); the total
cycles differ by less than 3% except when the DMA is starved and transfers are bursty (worst
case found: -4.5%, output stationary at 5 bytes/cycle; see tests/hwmodels/test_engines.py).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import simpy

from ..mapping import Schedule
from . import ENGINES
from .timing import Timing

ENGINE_VERSION = ENGINES["event"]


def _opens(store: np.ndarray) -> np.ndarray:
    """A fold opens an output tile if it is the first fold or follows a fold that stored."""
    opens = np.ones(store.size, bool)
    opens[1:] = store[:-1] > 0
    return opens


def _last_user(load: np.ndarray) -> np.ndarray:
    """For each fold with a load, the last fold that uses it (the fold before the next load)."""
    idx = np.flatnonzero(load > 0)
    last = np.empty(load.size, np.int64)
    last[:] = -1
    if idx.size:
        last[idx] = np.r_[idx[1:] - 1, load.size - 1]
    return last


def _operand(env: simpy.Environment, cyc: np.ndarray, slotted: bool, depth: int) -> tuple:
    """One operand's loads, their ready events, the load each fold waits for, its buffer slots
    (None: resident, no slot cycling) and how many slots each fold frees when it ends."""
    n = cyc.size
    loads = np.flatnonzero(cyc > 0)
    ready = {int(i): env.event() for i in loads}
    # the load each fold waits for: the latest load at or before it
    need = np.maximum.accumulate(np.where(cyc > 0, np.arange(n), -1))
    release_at: dict[int, int] = {}
    slots = None
    if slotted and loads.size:
        slots = simpy.Container(env, capacity=depth, init=depth)
        last = _last_user(cyc)
        for i in loads:
            release_at.setdefault(int(last[i]), 0)
            release_at[int(last[i])] += 1
    return loads.tolist(), cyc.tolist(), ready, need.tolist(), slots, release_at


def simulate_folds(busy: np.ndarray, w_cyc: np.ndarray, x_cyc: np.ndarray, store_cyc: np.ndarray,
                   double_buffering: bool, weight_slots: bool = True,
                   input_slots: bool = True, fold_ends: list | None = None) -> float:
    """Total cycles of a fold sequence in simpy (see the module docstring); `fold_ends`, if
    given, receives the time each fold left the array."""
    n = int(busy.size)
    if n == 0:
        return 0.0
    env = simpy.Environment()
    dma = simpy.PriorityResource(env, capacity=1)
    depth = 2 if double_buffering else 1
    out_slots = simpy.Container(env, capacity=depth, init=depth)
    busy_l = busy.tolist()
    store_l = store_cyc.tolist()
    opens = _opens(store_cyc)
    opens_l = opens.tolist()
    starts = np.flatnonzero(opens)
    tile_len = np.diff(np.r_[starts, n])
    chunks_l = np.repeat(tile_len, tile_len).tolist()
    # deadline of a tile's store: the opening fold that reuses its output slot
    deadline = np.r_[starts[depth:], np.full(depth, n)]
    store_prio_l = np.repeat(deadline, tile_len).tolist()
    done = {"t": 0.0}

    operands = [_operand(env, cyc, slotted, depth)
                for cyc, slotted in ((w_cyc, weight_slots), (x_cyc, input_slots))]

    def loader(loads, cyc, ready, slots):
        for i in loads:
            if slots is not None:
                yield slots.get(1)
            req = dma.request(priority=i)
            yield req
            yield env.timeout(cyc[i])
            dma.release(req)
            ready[i].succeed()

    def storer(cycles, chunks, prio):
        piece = cycles / chunks
        for _ in range(chunks):
            req = dma.request(priority=prio)
            yield req
            yield env.timeout(piece)
            dma.release(req)
        out_slots.put(1)
        done["t"] = max(done["t"], env.now)

    def array():
        for i in range(n):
            for _, _, ready, need, _, _ in operands:
                j = need[i]
                if j >= 0 and not ready[j].processed:
                    yield ready[j]
            if opens_l[i]:
                yield out_slots.get(1)
            if busy_l[i] > 0:
                yield env.timeout(busy_l[i])
            if fold_ends is not None:
                fold_ends.append(env.now)
            for _, _, _, _, slots, release_at in operands:
                if slots is not None and i in release_at:
                    slots.put(release_at[i])
            if store_l[i] > 0:
                env.process(storer(store_l[i], chunks_l[i], store_prio_l[i]))
            elif i == n - 1 or opens_l[i + 1]:
                out_slots.put(1)  # a tile that stores nothing frees its slot at once
        done["t"] = max(done["t"], env.now)

    for loads, cyc, ready, _, slots, _ in operands:
        if loads:
            env.process(loader(loads, cyc, ready, slots))
    env.process(array())
    env.run()
    return float(done["t"])


def time_schedule(s: Schedule, bytes_per_cycle: float, double_buffering: bool) -> Timing:
    """The op's cycles, simulated fold by fold (see the module docstring)."""
    stream, fill, index, wl, xl, store = s.repeated("stream", "fill", "index", "weight_load",
                                                    "input_load", "store_bytes")
    busy = (stream + fill + index).astype(np.float64)
    ends: list[float] = []
    total = simulate_folds(busy, wl / bytes_per_cycle, xl / bytes_per_cycle,
                           store / bytes_per_cycle, double_buffering,
                           s.weight_slots or not double_buffering,
                           s.input_slots or not double_buffering, fold_ends=ends)
    return replace(Timing.split(s.kind, total, stream, fill, index),
                   fold_end_cycles=np.asarray(ends) if s.kind == "gemm" else None)
