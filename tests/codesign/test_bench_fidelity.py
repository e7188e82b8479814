"""benchmarks/bench_fidelity.py: the rank agreement and the table it prints (no measurement)."""
import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fidelity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fidelity", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kendall_tau_orders(bench):
    assert bench.kendall_tau([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert bench.kendall_tau([0.1, 0.2, 0.3, 0.4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert bench.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert math.isnan(bench.kendall_tau([1.0], [1.0]))


def _row(block, comp, variant, value):
    return {"task": "sst2", "metric": "accuracy", "block": block, "compression": comp,
            "variant": variant, "fidelity": variant, "value": value, "low": value - 0.02,
            "high": value + 0.02, "dense": 0.86, "drop_points": 100 * (0.86 - value),
            "seconds": 3.0, "from_cache": True, "device": "cpu"}


def test_report_table_and_tau(bench):
    rows = [_row("16x16", 2.0, "oneshot", 0.5), _row("16x16", 2.0, "retrain", 0.84),
            _row("1x16", 2.0, "oneshot", 0.6), _row("1x16", 2.0, "retrain", 0.85),
            _row("16x16", 3.0, "oneshot", 0.4), _row("16x16", 3.0, "retrain", 0.80)]
    text = bench._report(rows, ["sst2"], ["oneshot", "retrain"], 1.0, {})
    assert "| 16x16 | 2x | 0.500 [0.480, 0.520] +36.0 (3 s) | 0.840 [0.820, 0.860] +2.0 (3 s) |" \
        in text
    assert "Kendall tau-b against `retrain` over 3 points: oneshot 1.00" in text


def test_prune_ratios_match_a_studys_so_the_cache_is_shared(bench):
    from codesign.study.schema import PruningSpec

    comps = [1.5, 2, 3, 4, 5]
    spec = PruningSpec(block_shapes=["16x16"], compression=comps)
    assert [bench.prune_ratio(c) for c in comps] == spec.ratios
