"""The study hardware keys `weight_preload` and `vector_overlap`: validated, sweepable like
`dataflow`, passed to the board, and absent from a point's identity when the study omits them
(the pinned ids of tests/codesign/test_sweep_space.py stay)."""
from __future__ import annotations

import pytest

from codesign.study import AcceleratorChoice, resolve

from cs_helpers import small_study_space


def _space(tmp_path, extra=""):
    return small_study_space(tmp_path, "pipe", extra)


def test_absent_keys_stay_out_of_the_point_identity(tmp_path):
    space = _space(tmp_path)
    for p in space.points():
        keys = dict(p.hardware)
        assert "weight_preload" not in keys and "vector_overlap" not in keys
    acc = resolve(space.study, space.choices[0]).accelerator
    assert (acc.weight_preload, acc.vector_overlap) == ("overlapped", "fused")  # the board's


def test_the_keys_sweep_and_reach_the_accelerator(tmp_path):
    extra = "  weight_preload: [serial, Overlapped]\n  vector_overlap: none\n"
    space = _space(tmp_path, extra)
    assert len(space.choices) == 2
    assert {c.weight_preload for c in space.choices} == {"serial", "overlapped"}
    ids = set()
    for choice in space.choices:
        acc = resolve(space.study, choice).accelerator
        assert (acc.weight_preload, acc.vector_overlap) == (choice.weight_preload, "none")
        assert AcceleratorChoice.from_study_values(choice.study_values()) == choice
    for p in space.points():
        keys = dict(p.hardware)
        assert keys["vector_overlap"] == "none" and keys["weight_preload"] in ("serial",
                                                                              "overlapped")
        ids.add(p.point_id)
    assert len(ids) == len(space.points())  # the modes are different points


@pytest.mark.parametrize("extra,key", [("  weight_preload: [serial, double]\n", "weight_preload"),
                                       ("  vector_overlap: yes\n", "vector_overlap")])
def test_an_unknown_mode_names_the_key(tmp_path, extra, key):
    with pytest.raises(Exception, match=key) as err:
        _space(tmp_path, extra)
    assert "\n" not in str(err.value).strip()
