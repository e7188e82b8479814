"""The uniform baseline of latency-aware allocation: every matrix pruned at the same ratio.

What is modelled: `uniform_masks` removes the same fraction of blocks from every prunable
matrix, its least important ones (PE-balanced with a `balance`); `uniform_for_target` finds the
smallest such ratio whose masks meet a simulated latency target, the baseline
`codesign.pruning.allocation.allocate` is compared to (benchmarks/bench_allocation.py).
Ignored: the ratio is searched by bisection to a resolution, assuming latency falls as the ratio
rises (true of the cost table; the structure credit of `"carry"` only adds to it).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from hwmodels.costs import CostTable
from hwmodels.sparsity import BlockMask

from codesign.pruning.allocation import exact_cycles, simulated_ms, target_cycles
from codesign.pruning.balance import balanced_keep


def uniform_masks(table: CostTable, importance: Mapping[str, np.ndarray], ratio: float, *,
                  balance=None) -> dict[str, BlockMask]:
    """Every matrix loses exactly round(ratio * blocks) of its least important blocks (ties by
    grid position, row-major): `codesign.pruning.blocks.prune_mask` on numpy. With `balance`
    (a `codesign.pruning.balance.PEBalance`) the same kept count, PE-balanced
    (`balance.balanced_keep`)."""
    out = {}
    for name, m in table.matrices.items():
        imp = np.asarray(importance[name], np.float64)
        flat = imp.ravel()
        n_prune = int(round(float(ratio) * flat.size))
        if balance is not None:
            keep = balanced_keep(imp, flat.size - n_prune,
                                 balance.groups(m.matrix_shape, table.block_shape))
        else:
            keep = np.ones(flat.size, bool)
            if n_prune:
                keep[np.argsort(flat, kind="stable")[:n_prune]] = False
        out[name] = BlockMask(keep.reshape(imp.shape), table.block_shape, m.matrix_shape)
    return out


def uniform_for_target(table: CostTable, importance: Mapping[str, np.ndarray], *,
                       latency_ms: float | None = None, speedup: float | None = None,
                       resolution: float = 1e-3, balance=None,
                       structure: str = "ignore") -> tuple[float, dict[str, BlockMask], float]:
    """The smallest uniform ratio (to `resolution`, by bisection) whose masks (PE-balanced with
    `balance`) meet the target: (ratio, masks, `simulated_ms` of them), judged by
    `allocation.exact_cycles` with `structure`: `"ignore"`, the table's latency; `"carry"`, as
    `allocate` does by default, simulate's, which also credits the heads and neurons the masks
    remove entirely (a stronger baseline)."""
    return ratio_for_target(
        table, lambda ratio: uniform_masks(table, importance, ratio, balance=balance),
        latency_ms=latency_ms, speedup=speedup, resolution=resolution, structure=structure)


def ratio_for_target(table: CostTable, masks_at: Callable[[float], dict[str, BlockMask]], *,
                     latency_ms: float | None = None, speedup: float | None = None,
                     resolution: float = 1e-3,
                     structure: str = "ignore") -> tuple[float, dict[str, BlockMask], float]:
    """`uniform_for_target` for any rule `masks_at(ratio)` that removes more as the ratio
    rises (e.g. `codesign.pruning.fisher.global_keep`): the smallest ratio meeting the target,
    its masks and their `simulated_ms`."""
    target = target_cycles(table, latency_ms=latency_ms, speedup=speedup)

    def meets(ratio: float) -> bool:
        return exact_cycles(table, masks_at(ratio), structure) <= target

    lo, hi = 0.0, 1.0
    if not meets(hi):
        raise ValueError(f"target {table.cycles_to_ms(target):.4f} ms is out of reach even "
                         "with every block removed")
    while hi - lo > resolution:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    masks = masks_at(hi)
    return hi, masks, simulated_ms(table, masks)


__all__ = ["ratio_for_target", "uniform_for_target", "uniform_masks"]
