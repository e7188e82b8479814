"""Latency-aware allocation: which blocks to remove in every matrix to meet a simulated latency.

What is modelled. Given a cost lookup (`hwmodels.costs.CostTable`: an accelerator, a workload,
a block shape), a per-block importance of every prunable matrix (the loss its removal is
estimated to cost, e.g. `calibrate.block_saliency`), and a target (simulated latency, or a
speedup over the same accelerator's dense run), `allocate` chooses the blocks to remove so that
the simulated latency meets the target with little summed importance removed:

1. **Greedy by importance per cycle saved.** A *move* removes the blocks one unit of saving
   needs (`hwmodels.costs`): under tile-skip every still-kept block intersecting one skip tile
   (a partly emptied tile saves nothing, so whole tiles are emptied); under compaction the
   least important kept blocks of every block row of one PE-column group that stands above the
   next level (ws: one fold, R K positions, lower; os: one block width). Its price is the summed
   importance of those blocks over the estimated cycles saved (units emptied x the matrix's
   slope `unit_cycles`); the cheapest move goes first (ties: lower importance, then workload
   order), and moves sharing blocks with it are re-priced.
2. **Exact prefix.** The shortest prefix of that sequence whose exact simulated latency
   (`exact_cycles`: by default `hwmodels.simulate`'s own, which also drops the work of whole
   heads and FFN neurons the masks remove; `structure="ignore"`: `CostTable.latency_cycles`,
   equal to simulate with ``structure="ignore"``, version 1's judge, which at 3x on MiniLM
   removed twice the blocks the target needed) meets the target, by bisection (verified at
   the end; the sequence is extended while it does not reach the target). The greedy order
   itself does not see that credit (it prices tiles and groups, not heads).
3. **Local refinement** (exact checks only): *trim*, restore removed moves, most important
   first, while the target still holds; *swap*, restore a removed move A and take instead one
   of the next greedy moves B with less importance and at least A's estimated saving, when the
   target still holds. Within one matrix and one unit class (same tile size, or compaction
   levels) the removed moves stay the least important ones: a class is only trimmed from its
   most important removed move down, and swaps take the cheapest remaining move of a class.

Ignored: interactions of importance between blocks (importance is additive); the search is
greedy, not a global optimum; a target below what removing every block reaches is an error.
No torch: importance comes in as numpy grids (the mask grid's shape, parameter orientation).
"""
from __future__ import annotations

import heapq
import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

from hwmodels.costs import CostTable, MatrixCosts, block_spans
from hwmodels.sparsity import BlockMask, edge_sizes

log = logging.getLogger("codesign")

SWAP_CANDIDATES = 64  # greedy moves past the prefix offered to the swap pass
MAX_REFINE_TRIES = 400  # exact evaluations the refinement may spend


@dataclass(frozen=True)
class Allocation:
    """What `allocate` chose: the masks (every matrix of the table) and what they reach."""

    masks: dict[str, BlockMask]
    latency_ms: float  # exact simulated latency of `masks` (hwmodels.simulate: `simulated_ms`)
    target_ms: float
    dense_ms: float  # the same accelerator and workload without masks
    removed_importance: float
    total_importance: float
    moves: int  # greedy moves in the prefix
    trimmed: int
    swaps: int
    evaluations: int  # exact latency evaluations
    seconds: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.latency_ms if self.latency_ms > 0 else math.inf

    @property
    def block_density(self) -> float:
        kept = sum(m.kept_blocks for m in self.masks.values())
        return kept / sum(m.grid.size for m in self.masks.values())


@dataclass(frozen=True)
class Move:
    """One unit of saving taken in one matrix: the blocks it removes (flat grid indices)."""

    matrix: int
    blocks: np.ndarray
    importance: float
    saved_cycles: float  # estimated
    klass: tuple  # unit class: ("tile", block rows, block cols) or ("level", column group)


def target_cycles(table: CostTable, *, latency_ms: float | None = None,
                  speedup: float | None = None) -> float:
    """The target in cycles: a latency in ms, or dense latency / speedup (exactly one)."""
    if (latency_ms is None) == (speedup is None):
        raise ValueError("give exactly one target: latency_ms or speedup")
    if speedup is not None:
        if not speedup >= 1.0:
            raise ValueError(f"speedup {speedup}: must be >= 1 (a speedup over the dense run)")
        return table.latency_cycles({}) / float(speedup)
    if not latency_ms > 0:
        raise ValueError(f"latency_ms {latency_ms}: must be > 0")
    return table.ms_to_cycles(latency_ms)


class _State:
    """Mutable search state of one matrix (private to the search)."""

    def __init__(self, index: int, costs: MatrixCosts, table: CostTable,
                 importance: np.ndarray, min_density: float = 0.0) -> None:
        self.index, self.costs = index, costs
        self.grid_shape = BlockMask.dense(table.block_shape, costs.matrix_shape).grid.shape
        imp = np.asarray(importance, np.float64)
        if imp.shape != self.grid_shape or not np.isfinite(imp).all() or (imp < 0).any():
            raise ValueError(f"importance of {costs.name}: need finite values >= 0 on the block "
                             f"grid {self.grid_shape}, got shape {imp.shape}")
        self.importance = imp.ravel()
        self.removed = np.zeros(self.importance.size, bool)
        self.min_kept = math.ceil(float(min_density) * self.importance.size)
        self.members = table.units(costs.name)
        bh, bw = table.block_shape
        out, inp = costs.matrix_shape
        self.widths = edge_sizes(inp, bw)  # packed K of each block column
        ncols = self.grid_shape[1]
        unit_of: list[list[int]] = [[] for _ in range(self.importance.size)]
        for u, mem in enumerate(self.members):
            for b in mem:
                unit_of[b].append(u)
        self.unit_of = unit_of
        rlo, rhi = block_spans(out, costs.unit_out, bh)
        clo, chi = block_spans(inp, costs.unit_in, bw)
        self.klass = [("tile", int(r1 - r0), int(c1 - c0)) if costs.kind == "tile"
                      else ("level", u) for u, (r0, r1) in enumerate(zip(rlo, rhi))
                      for c0, c1 in zip(clo, chi)]
        self.rows_of = [np.arange(r0, r1) for r0, r1 in zip(rlo, rhi)]  # level units
        self.ncols = ncols

    # ------------------------------------------------------------------ moves
    def move(self, u: int) -> Move | None:
        if self.costs.unit_cycles <= 0:
            return None
        blocks = self._tile_blocks(u) if self.costs.kind == "tile" else self._level_blocks(u)
        if blocks is None or blocks.size == 0:
            return None
        if not self.allows(blocks):
            return None
        units = self._units_saved(blocks)
        if units <= 0:
            return None
        return Move(self.index, blocks, float(self.importance[blocks].sum()),
                    units * self.costs.unit_cycles, self.klass[u])

    def allows(self, blocks: np.ndarray) -> bool:
        """Whether removing `blocks` keeps the matrix at or above its floor (`min_density`)."""
        return (self.min_kept == 0
                or self.importance.size - int(self.removed.sum()) - blocks.size >= self.min_kept)

    def _tile_blocks(self, u: int) -> np.ndarray:
        mem = self.members[u]
        return mem[~self.removed[mem]]

    def _packed(self, rows: np.ndarray) -> np.ndarray:
        kept = ~self.removed.reshape(self.grid_shape)[rows]
        return kept.astype(np.int64) @ self.widths

    def _level_blocks(self, u: int) -> np.ndarray | None:
        rows = self.rows_of[u]
        packed = self._packed(rows)
        top = int(packed.max()) if packed.size else 0
        if top == 0:
            return None
        step = self.costs.level_step
        new = (math.ceil(top / step) - 1) * step
        out = []
        for r, p in zip(rows, packed):
            if p <= new:
                continue
            flat = r * self.ncols + np.arange(self.ncols)
            kept = flat[~self.removed[flat]]
            order = kept[np.argsort(self.importance[kept], kind="stable")]
            cum = np.cumsum(self.widths[order % self.ncols])
            need = int(np.searchsorted(cum, p - new))  # first index with cum >= p - new
            out.append(order[: need + 1])
        return np.concatenate(out) if out else None

    def _units_saved(self, blocks: np.ndarray) -> float:
        touched = sorted({u for b in blocks for u in self.unit_of[b]})
        after = self.removed.copy()
        after[blocks] = True
        if self.costs.kind == "tile":
            return float(sum(bool(after[self.members[u]].all())
                             and not bool(self.removed[self.members[u]].all()) for u in touched))
        step = self.costs.level_step
        saved = 0.0
        for u in touched:
            rows = self.rows_of[u]
            grid_before = (~self.removed.reshape(self.grid_shape)[rows]).astype(np.int64)
            grid_after = (~after.reshape(self.grid_shape)[rows]).astype(np.int64)
            saved += (math.ceil((grid_before @ self.widths).max() / step)
                      - math.ceil((grid_after @ self.widths).max() / step))
        return saved

    def touched_units(self, blocks: np.ndarray) -> list[int]:
        return sorted({u for b in blocks for u in self.unit_of[b]})


def _greedy(states: list[_State]) -> Iterator[Move]:
    """The greedy sequence (see the module docstring): moves applied to `states` as yielded."""
    heap: list[tuple] = []
    version: dict[tuple[int, int], int] = {}

    def push(st: _State, u: int) -> None:
        key = (st.index, u)
        version[key] = version.get(key, 0) + 1
        mv = st.move(u)
        if mv is not None:
            heapq.heappush(heap, (mv.importance / mv.saved_cycles, mv.importance, st.index, u,
                                  version[key], mv))

    for st in states:
        for u in range(len(st.members)):
            push(st, u)
    while heap:
        *_, m, u, ver, mv = heapq.heappop(heap)
        if version.get((m, u)) != ver:
            continue
        st = states[m]
        if not st.allows(mv.blocks):
            continue  # priced before its matrix came down to the floor
        st.removed[mv.blocks] = True
        yield mv
        for t in st.touched_units(mv.blocks):
            push(st, t)


class _Sequence:
    """Greedy moves and the exact latency of any subset of them (private)."""

    def __init__(self, table: CostTable, importance: Mapping[str, np.ndarray],
                 structure: str = "carry", min_density: float = 0.0) -> None:
        missing = [n for n in table.matrices if n not in importance]
        if missing:
            raise ValueError(f"importance: no grid for {len(missing)} matrix(es), e.g. "
                             f"{missing[0]}")
        self.table, self.structure = table, structure
        self.names = list(table.matrices)
        if not 0.0 <= min_density < 1.0:
            raise ValueError(f"min_density {min_density}: must lie in [0, 1)")
        self.floor_text = f" that min_density={min_density:g} allows" if min_density else ""
        self.states = [_State(i, table.matrices[n], table, importance[n], min_density)
                       for i, n in enumerate(self.names)]
        self.importance = [st.importance.copy() for st in self.states]
        self.shapes = [st.grid_shape for st in self.states]
        self.moves: list[Move] = []
        self._gen = _greedy(self.states)
        self.evaluations = 0

    def extend(self, count: int) -> bool:
        """Take up to `count` more greedy moves; False when none is left."""
        for _ in range(count):
            mv = next(self._gen, None)
            if mv is None:
                return False
            self.moves.append(mv)
        return True

    def masks(self, active) -> dict[str, BlockMask]:
        removed = [np.zeros(int(np.prod(s)), bool) for s in self.shapes]
        for i in active:
            mv = self.moves[i]
            removed[mv.matrix][mv.blocks] = True
        return {n: BlockMask(~r.reshape(s), self.table.block_shape,
                             self.table.matrices[n].matrix_shape)
                for n, r, s in zip(self.names, removed, self.shapes)}

    def cycles(self, active) -> float:
        self.evaluations += 1
        return exact_cycles(self.table, self.masks(active), self.structure)

    def removed_importance(self, active) -> float:
        removed = [np.zeros(imp.size, bool) for imp in self.importance]
        for i in active:
            removed[self.moves[i].matrix][self.moves[i].blocks] = True
        return float(sum(imp[r].sum() for imp, r in zip(self.importance, removed)))


def _shortest_prefix(seq: _Sequence, target: float, start_cycles: float) -> int:
    """Smallest prefix length whose exact cycles meet `target` (extends the sequence)."""
    est = start_cycles
    while est > target:
        if not seq.extend(1):
            break
        est -= seq.moves[-1].saved_cycles
    while seq.cycles(range(len(seq.moves))) > target:
        if not seq.extend(max(8, len(seq.moves) // 20)):
            if seq.cycles(range(len(seq.moves))) > target:
                raise ValueError(
                    f"target {seq.table.cycles_to_ms(target):.4f} ms is out of reach: removing "
                    f"every block{seq.floor_text} gives "
                    f"{seq.table.cycles_to_ms(seq.cycles(range(len(seq.moves)))):.4f} ms")
            break
    lo, hi = 0, len(seq.moves)  # invariant: prefix hi meets the target
    if seq.cycles(range(0)) <= target:
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if seq.cycles(range(mid)) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _refine(seq: _Sequence, prefix: int, target: float) -> tuple[set[int], int, int]:
    """Trim and swap passes (see the module docstring); the active moves, trims, swaps.

    Only the latest active move of a (matrix, unit class) may be restored (for a class of equal
    tiles the greedy took them in importance order, so it is the most important; for a
    compaction group it is the last level taken), and only the first spare move of a class not
    restored from may be swapped in, so every class keeps its least important moves removed."""
    active = set(range(prefix))
    seq.extend(SWAP_CANDIDATES)
    spare = list(range(prefix, len(seq.moves)))
    by_class: dict[tuple, list[int]] = {}
    for i in range(prefix):
        by_class.setdefault(_class_of(seq.moves[i]), []).append(i)
    tries = trimmed = swaps = 0
    blocked: set[tuple] = set()
    restored: set[tuple] = set()
    while tries < MAX_REFINE_TRIES:
        heads = [(seq.moves[v[-1]].importance, c) for c, v in by_class.items()
                 if v and c not in blocked]
        if not heads:
            break
        _, cls = max(heads, key=lambda h: (h[0], -seq.moves[by_class[h[1]][-1]].matrix))
        i = by_class[cls][-1]
        tries += 1
        if seq.cycles(active - {i}) <= target:
            trimmed += 1
        elif _try_swap(seq, active, spare, i, target, restored | {cls}) is not None:
            tries += 1
            swaps += 1
        else:
            blocked.add(cls)
            continue
        active.discard(i)
        by_class[cls].pop()
        restored.add(cls)
    return active, trimmed, swaps


def _class_of(mv: Move) -> tuple:
    return (mv.matrix, mv.klass)


def _try_swap(seq: _Sequence, active: set[int], spare: list[int], i: int, target: float,
              restored: set[tuple]) -> int | None:
    """Replace active move i by the first spare move of a class (not restored from) that
    removes less importance and saves at least as much (estimated), if the target still holds
    (exact check); the move swapped in, or None."""
    mv = seq.moves[i]
    seen: set[tuple] = set()
    for j in spare:
        b = seq.moves[j]
        cls = _class_of(b)
        if cls in seen or cls in restored:
            continue
        seen.add(cls)
        if b.importance < mv.importance and b.saved_cycles >= mv.saved_cycles:
            if seq.cycles((active - {i}) | {j}) <= target:
                active.add(j)
                spare.remove(j)
                return j
            return None
    return None


def allocate(table: CostTable, importance: Mapping[str, np.ndarray], *,
             latency_ms: float | None = None, speedup: float | None = None,
             refine: bool = True, structure: str = "carry",
             min_density: float = 0.0) -> Allocation:
    """Choose the blocks to remove (see the module docstring); exactly one target, judged by
    `exact_cycles` with `structure`. `min_density`: no matrix keeps fewer than that fraction
    of its blocks (0: no floor, as before)."""
    t0 = time.perf_counter()
    target = target_cycles(table, latency_ms=latency_ms, speedup=speedup)
    seq = _Sequence(table, importance, structure, min_density)
    start = seq.cycles(())
    prefix = _shortest_prefix(seq, target, start)
    active, trimmed, swaps = (_refine(seq, prefix, target) if refine and prefix
                              else (set(range(prefix)), 0, 0))
    masks = seq.masks(active)
    cycles = exact_cycles(table, masks, structure)
    if cycles > target:  # cannot happen: every accepted state was checked
        raise AssertionError(f"allocation missed its target ({cycles} > {target} cycles)")
    total = float(sum(imp.sum() for imp in seq.importance))
    log.info("allocation: %d moves (%d trimmed, %d swaps), %.4f ms for a target of %.4f ms",
             prefix, trimmed, swaps, table.cycles_to_ms(cycles), table.cycles_to_ms(target))
    return Allocation(masks=masks, latency_ms=simulated_ms(table, masks),
                      target_ms=table.cycles_to_ms(target), dense_ms=table.latency_ms({}),
                      removed_importance=seq.removed_importance(active), total_importance=total,
                      moves=prefix, trimmed=trimmed, swaps=swaps, evaluations=seq.evaluations,
                      seconds=time.perf_counter() - t0)


def exact_cycles(table: CostTable, masks: Mapping[str, BlockMask], structure: str) -> float:
    """The cycles a target is judged on: `"ignore"`, the table's (`CostTable.latency_cycles`,
    simulate with ``structure="ignore"``); `"carry"`, `hwmodels.simulate`'s total, which also
    drops the work of whole heads and FFN neurons the masks remove (`hwmodels.structure`)."""
    if structure == "ignore":
        return table.latency_cycles(masks)
    if structure != "carry":
        raise ValueError(f"structure {structure!r}: choose carry or ignore")
    import hwmodels

    return float(hwmodels.simulate(table.workload, table.accelerator, masks,
                                   table.engine).total_cycles)


def simulated_ms(table: CostTable, masks: Mapping[str, BlockMask]) -> float:
    """`hwmodels.simulate`'s latency of `masks` on the table's workload and accelerator: the
    table's exact latency, less the work of whole heads and FFN neurons the masks remove
    (`hwmodels.structure`, which the table does not price: the search is conservative)."""
    import hwmodels

    return hwmodels.simulate(table.workload, table.accelerator, masks, table.engine).latency_ms


# --------------------------------------------------------------------------- identity
#: the version of the search above: it enters the accuracy cache keys of allocation-made masks
#: (codesign.accuracy.measurement.allocation_spec), so a changed search never serves old masks
ALLOCATION_VERSION = 3  # 2: targets judged with the structure credit; 3: the floor below
#: The per-matrix floor `latency_aware_prune` (so `codesign prune` and studies) keeps by default
#: with the OBS or norm saliency (`default_min_density`): with their relative importance and no
#: floor the search emptied whole sublayers and fell below uniform pruning at 3x; with it, above.
#: The Fisher saliency needs none: without a floor it scored as high or higher, and with one a
#: 3x compaction target was out of reach (measured: docs/pruning.md, bench_allocation)
DEFAULT_MIN_DENSITY = 0.25


def default_min_density(saliency: str) -> float:
    """The per-matrix floor latency-aware allocation keeps by default with `saliency`: none (0)
    for "fisher", `DEFAULT_MIN_DENSITY` for "obs" and "norm"."""
    return 0.0 if saliency == "fisher" else DEFAULT_MIN_DENSITY
#: Accelerator fields that only price energy or name the accelerator: not part of its identity
_PRICING_FIELDS = ("name", "source", "energy", "energy_model", "power")


def accelerator_identity(accelerator) -> str:
    """A short hash of every field of an `hwmodels.Accelerator` that may change a schedule or
    its timing (all of them, present or future, except the energy table, the power model and
    the labels): two accelerators with equal identities get the same allocation."""
    import dataclasses

    from codesign.hashing import short_hash

    data = dataclasses.asdict(accelerator)
    for name in _PRICING_FIELDS:
        data.pop(name, None)
    return short_hash(data)


__all__ = ["ALLOCATION_VERSION", "DEFAULT_MIN_DENSITY", "Allocation", "Move",
           "accelerator_identity", "allocate", "default_min_density", "exact_cycles",
           "target_cycles"]
