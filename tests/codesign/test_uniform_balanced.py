"""The uniform baseline with PE-balanced masks (uniform.uniform_for_target(balance=...)),
which benchmarks/bench_allocation.py compares under compaction: the same kept count per matrix
as the unbalanced baseline, the same count in every lane of a balance group (the remainder
rule's one extra block aside), the target met on the simulator with fewer blocks removed, and
a lower compaction load imbalance."""
from __future__ import annotations

import numpy as np
import pytest

import hwmodels
from hwmodels.costs import build_costs

from codesign.pruning.uniform import uniform_for_target, uniform_masks
from codesign.pruning.balance import PEBalance
from codesign.workload import encoder_workload

CONFIG = {"model_type": "bert", "hidden_size": 128, "num_attention_heads": 4,
          "intermediate_size": 512, "num_hidden_layers": 2, "vocab_size": 1000,
          "max_position_embeddings": 128}
ROLES = ("attention.self.query", "attention.self.key", "attention.self.value",
         "attention.output.dense", "intermediate.dense", "output.dense")


@pytest.fixture(scope="module")
def table():
    names = [f"bert.encoder.layer.{i}.{r}.weight" for i in range(2) for r in ROLES]
    wl = encoder_workload(CONFIG, 64, 1, mask_names=names)
    acc = hwmodels.load_board("zcu102", {"sparse_strategy": "compact",
                                         "pe_array": {"rows": 16, "cols": 32}})
    return build_costs(wl, acc, "8x8")


@pytest.fixture(scope="module")
def importance(table):
    rng = np.random.default_rng(7)
    return {n: rng.random((-(-m.matrix_shape[0] // 8), -(-m.matrix_shape[1] // 8)))
            for n, m in table.matrices.items()}


def test_balanced_uniform_masks_keep_the_same_count_balanced(table, importance):
    balance = PEBalance.of(table.accelerator)
    plain = uniform_masks(table, importance, 0.55)
    bal = uniform_masks(table, importance, 0.55, balance=balance)
    for name, m in bal.items():
        assert m.grid.sum() == plain[name].grid.sum()
        for lo, hi in balance.groups(m.matrix_shape, (8, 8)):
            counts = m.grid[lo:hi].sum(axis=1)
            assert counts.max() - counts.min() <= 1  # equal, but the remainder's one extra
    assert any(not np.array_equal(bal[n].grid, plain[n].grid) for n in bal)


def test_balanced_uniform_meets_its_target_with_no_imbalance(table, importance):
    balance = PEBalance.of(table.accelerator)
    ratio, masks, latency_ms = uniform_for_target(table, importance, speedup=1.6,
                                                  balance=balance)
    target_ms = table.latency_ms({}) / 1.6
    report = hwmodels.simulate(table.workload, table.accelerator, masks, table.engine)
    assert report.latency_ms == latency_ms <= target_ms
        # one resolution step less pruning misses the target
    looser = uniform_masks(table, importance, ratio - 1e-3, balance=balance)
    assert table.latency_cycles(looser) > table.latency_cycles(masks)
    plain_ratio, plain_masks, _ = uniform_for_target(table, importance, speedup=1.6)
    plain = hwmodels.simulate(table.workload, table.accelerator, plain_masks, table.engine)
    # balanced: only the remainder rule's one extra block in some lanes is left unequal
    assert 1.0 <= report.load_imbalance < plain.load_imbalance
    even = [o for o in report.ops if o.load_imbalance == 1.0]
    assert len(even) > len([o for o in plain.ops if o.load_imbalance == 1.0])
    assert plain_ratio > ratio  # the balanced masks meet the target with fewer blocks removed
