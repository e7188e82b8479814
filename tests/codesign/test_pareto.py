"""Non-dominated sorting: checked against a brute-force double loop, plus ties, NaN, directions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from codesign import pareto
from codesign.pareto import (normalize_objectives, pareto_front, pareto_mask, pareto_mask_by,
                             with_speedup)


def brute_force(df: pd.DataFrame, objectives) -> np.ndarray:
    """Row i is on the front iff it has no NaN and no NaN-free row j dominates it."""
    rows = []
    for _, row in df.iterrows():
        rows.append([row[c] if d == "min" else -row[c] for c, d in objectives])
    costs = np.array(rows, dtype=float)
    out = np.zeros(len(df), dtype=bool)
    for i in range(len(df)):
        if np.isnan(costs[i]).any():
            continue
        dominated = False
        for j in range(len(df)):
            if i == j or np.isnan(costs[j]).any():
                continue
            if all(costs[j] <= costs[i]) and any(costs[j] < costs[i]):
                dominated = True
                break
        out[i] = not dominated
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_matches_brute_force_on_random_data(seed, k):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # rounding to a coarse grid makes ties on single objectives (and whole duplicate rows) common
    data = np.round(rng.random((n, k)) * 4) / 4
    cols = [f"o{i}" for i in range(k)]
    df = pd.DataFrame(data, columns=cols)
    if seed % 2:
        df.loc[rng.random(n) < 0.15, cols[0]] = np.nan
    directions = [("min", "max")[(seed + i) % 2] for i in range(k)]
    objectives = list(zip(cols, directions))
    expected = brute_force(df, objectives)
    got = pareto_mask(df, objectives)
    assert got.dtype == bool and got.shape == (n,)
    np.testing.assert_array_equal(got, expected)


def test_chunked_path_matches_unchunked(monkeypatch):
    rng = np.random.default_rng(7)
    df = pd.DataFrame(np.round(rng.random((300, 3)) * 10), columns=list("abc"))
    objs = [("a", "min"), ("b", "max"), ("c", "min")]
    whole = pareto_mask(df, objs)
    monkeypatch.setattr(pareto, "_BLOCK_ELEMENTS", 50)  # forces many small chunks
    np.testing.assert_array_equal(pareto_mask(df, objs), whole)
    np.testing.assert_array_equal(whole, brute_force(df, objs))


def test_identical_rows_are_all_on_the_front():
    df = pd.DataFrame({"latency_ms": [1.0, 1.0, 2.0], "accuracy": [0.9, 0.9, 0.8]})
    assert pareto_mask(df, [("latency_ms", "min"), ("accuracy", "max")]).tolist() == \
        [True, True, False]


def test_tie_on_one_objective_is_broken_by_the_other():
    df = pd.DataFrame({"latency_ms": [1.0, 1.0], "accuracy": [0.9, 0.8]})
    assert pareto_mask(df, [("latency_ms", "min"), ("accuracy", "max")]).tolist() == [True, False]


def test_nan_rows_never_on_front_and_never_dominate():
    # row 1 would dominate everything if its NaN accuracy were ignored
    df = pd.DataFrame({"latency_ms": [2.0, 0.1, 3.0, np.nan],
                       "accuracy": [0.8, np.nan, 0.9, 0.99]})
    got = pareto_mask(df, [("latency_ms", "min"), ("accuracy", "max")])
    assert got.tolist() == [True, False, True, False]


def test_all_nan_gives_empty_front():
    df = pd.DataFrame({"a": [np.nan, np.nan]})
    assert not pareto_mask(df, [("a", "min")]).any()


def test_direction_matters():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert pareto_mask(df, [("x", "min")]).tolist() == [True, False, False]
    assert pareto_mask(df, [("x", "max")]).tolist() == [False, False, True]
    # max on a column == min on its negation
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.random((40, 2)), columns=["a", "b"])
    neg = df.assign(b=-df["b"])
    np.testing.assert_array_equal(pareto_mask(df, [("a", "min"), ("b", "max")]),
                                  pareto_mask(neg, [("a", "min"), ("b", "min")]))


def test_non_numeric_values_count_as_nan():
    df = pd.DataFrame({"a": ["1", "oops", "0.5"], "b": [1.0, 0.0, 2.0]})
    assert pareto_mask(df, [("a", "min"), ("b", "min")]).tolist() == [True, False, True]


def test_objective_spellings():
    want = [("latency_ms", "min"), ("accuracy", "max")]
    assert normalize_objectives(want) == want
    assert normalize_objectives([{"metric": "latency_ms", "direction": "minimize"},
                                 {"metric": "accuracy", "direction": "max"}]) == want
    assert normalize_objectives({"latency_ms": "min", "accuracy": "maximize"}) == want
    assert normalize_objectives(["latency_ms:min", "+accuracy"]) == want
    assert normalize_objectives(None) == list(pareto.DEFAULT_OBJECTIVES)
    with pytest.raises(ValueError, match="direction"):
        normalize_objectives([("latency_ms", "smallest")])
    with pytest.raises(ValueError, match="needs a direction"):
        normalize_objectives(["latency_ms"])


def test_missing_column_is_a_one_line_error():
    with pytest.raises(ValueError, match="not columns") as info:
        pareto_mask(pd.DataFrame({"a": [1.0]}), [("latency_ms", "min")])
    assert "\n" not in str(info.value)


def test_front_per_group_equals_front_of_each_group():
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"latency_ms": rng.random(50), "accuracy": rng.random(50),
                       "block_shape": rng.choice(["4x4", "16x16", "32x1"], 50)})
    objs = [("latency_ms", "min"), ("accuracy", "max")]
    got = pareto_mask_by(df, objectives=objs, by="block_shape")
    for shape, group in df.groupby("block_shape"):
        np.testing.assert_array_equal(got[group.index.to_numpy()], brute_force(group, objs))
    # each group's front holds at least its own global-front members
    assert (got | ~pareto_mask(df, objs)).all()
    front = pareto_front(df, objectives=objs, by="block_shape")
    assert len(front) == got.sum()
    for _, group in front.groupby("block_shape"):
        assert group["latency_ms"].is_monotonic_increasing


def test_with_speedup_uses_the_dense_baseline_of_the_same_accelerator():
    df = pd.DataFrame({
        "block_shape": ["dense", "dense", "16x16", "16x16", "16x16"],
        "prune_ratio": [0.0, 0.0, 0.5, 0.5, 0.5],
        "compression": [1.0, 1.0, 2.0, 2.0, 2.0],
        "array": ["16x16", "32x32", "16x16", "32x32", "64x64"],
        "latency_ms": [10.0, 4.0, 8.0, 1.0, 1.0],
    })
    out = with_speedup(df)
    assert out["speedup"].iloc[2] == pytest.approx(10.0 / 8.0)
    assert out["speedup"].iloc[3] == pytest.approx(4.0)
    assert np.isnan(out["speedup"].iloc[4])  # no dense run on a 64x64 array
    assert out["ideal_speedup"].iloc[3] == 2.0


def test_points_column_is_the_one_rename_of_study_keys():
    assert pareto.HW_COLUMNS == {"pe_array": "array"}
    assert [pareto.points_column(k) for k in ("pe_array", "dataflow", "buffers_kib.weight")] == \
        ["array", "dataflow", "buffer_weight_kib"]
    df = pd.DataFrame({"array": ["16x16"], "buffer_weight_kib": [256], "latency_ms": [1.0]})
    study = {"hardware": {"pe_array": ["16x16"], "buffers_kib": {"weight": [256]}}}
    assert pareto.accelerator_columns(df, study) == ["array", "buffer_weight_kib"]
