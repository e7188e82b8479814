"""The accuracy surrogate: monotone, labelled, refuses extrapolation, honest uncertainty."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.surrogate import AccuracySurrogate, SurrogateError


def _recs(points, block="16x16", dense=0.80, task="sst2", fidelity="retrain", model="minilm-l6"):
    return [dict(task=task, block_shape=block, ratio=r, pruned=p, dense=dense, fidelity=fidelity,
                 model=model, metric="accuracy", source="measured") for r, p in points]


def test_estimate_is_labelled_and_hits_measured_points():
    s = AccuracySurrogate.fit(_recs([(0.3, 0.78), (0.5, 0.74), (0.8, 0.60)]))
    e = s.predict("sst2", "16x16", 0.5)
    assert e.source == "surrogate" and e.to_dict()["source"] == "surrogate"
    assert e.estimate == pytest.approx(0.74) and e.uncertainty == pytest.approx(0.0)
    assert (0.5, 0.74) in e.fitted_from and (0.0, 0.80) in e.fitted_from
    assert not e.extrapolated and e.metric == "accuracy"


def test_between_points_interpolates_with_gap_uncertainty():
    s = AccuracySurrogate.fit(_recs([(0.5, 0.74), (0.8, 0.60)]))
    e = s.predict("sst2", "16x16", 0.65)
    assert e.estimate == pytest.approx(0.67)
    assert e.uncertainty == pytest.approx(0.07)  # half the 0.14 step between the neighbours
    # the dense baseline anchors ratio 0
    assert s.predict("sst2", "16x16", 0.0).estimate == pytest.approx(0.80)


def test_non_monotone_measurements_are_pooled_and_widen_uncertainty():
    # 0.5 measured better than 0.3: isotonic pooling gives one level, the residual shows up
    s = AccuracySurrogate.fit(_recs([(0.3, 0.70), (0.5, 0.76), (0.8, 0.60)]))
    e3, e5 = s.predict("sst2", "16x16", 0.3), s.predict("sst2", "16x16", 0.5)
    assert e3.estimate == pytest.approx(0.73) and e5.estimate == pytest.approx(0.73)
    assert e3.uncertainty > 0.02


def test_refuses_extrapolation_unless_asked():
    s = AccuracySurrogate.fit(_recs([(0.3, 0.78), (0.5, 0.74)]))
    with pytest.raises(SurrogateError, match="outside the measured range"):
        s.predict("sst2", "16x16", 0.9)
    e = s.predict("sst2", "16x16", 0.7, allow_extrapolation=True)
    assert e.extrapolated and e.estimate < 0.74
    inside = s.predict("sst2", "16x16", 0.45)
    assert e.uncertainty > inside.uncertainty


def test_groups_are_separate_and_ambiguity_is_an_error():
    recs = _recs([(0.5, 0.74)]) + _recs([(0.5, 0.55)], block="1x1")
    recs += _recs([(0.5, 0.70)], fidelity="oneshot")
    s = AccuracySurrogate.fit(recs)
    assert s.predict("sst2", "1x1", 0.5).estimate == pytest.approx(0.55)
    with pytest.raises(SurrogateError, match="several"):
        s.predict("sst2", "16x16", 0.5)
    assert s.predict("sst2", "16x16", 0.5, fidelity="oneshot").estimate == pytest.approx(0.70)
    with pytest.raises(SurrogateError, match="no measured points"):
        s.predict("mrpc", "16x16", 0.5)


def test_refuses_to_fit_on_surrogate_output():
    recs = _recs([(0.5, 0.74)])
    recs[0]["source"] = "surrogate"
    with pytest.raises(SurrogateError, match="measured points only"):
        AccuracySurrogate.fit(recs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 0.95), st.floats(0.3, 0.9)), min_size=1, max_size=8))
def test_monotone_non_increasing_for_any_measurements(points):
    s = AccuracySurrogate.fit(_recs(points))
    lo, hi = s.measured_range("sst2", "16x16")
    grid = np.linspace(lo, hi, 25)
    est = [s.predict("sst2", "16x16", float(r)).estimate for r in grid]
    assert all(b <= a + 1e-9 for a, b in zip(est, est[1:]))
    assert all(s.predict("sst2", "16x16", float(r)).uncertainty >= 0 for r in grid)
