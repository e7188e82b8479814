"""A dataflow per op type at the edges: `codesign simulate(-gemm) --dataflow` takes one dataflow or
a plan (one-line error naming the flag otherwise), and a study's `hardware.dataflow` may list
plans, each kept as its canonical text, which labels the point and reaches the accelerator."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from codesign.cli import main
from codesign.study import StudyError, resolve

from cs_helpers import small_study_space


def _run(*args):
    return CliRunner().invoke(main, list(args))


def _json(*args) -> dict:
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_simulate_takes_one_dataflow_or_a_plan():
    base = ("simulate", "--model", "minilm-l6", "--seq-len", "32")
    default = _json(*base)
    assert _json(*base, "--dataflow", "ws") == default  # zcu102's own dataflow is ws
    plan = _json(*base, "--dataflow", "projections=ws,attention=os")
    assert plan["dataflow"] == "ws,attention=os" and plan["cycles"] != default["cycles"]
    roles = {o["role"]: o["dataflow"] for o in plan["report"]["ops"] if o["kind"] == "gemm"}
    assert roles == {"q": "ws", "k": "ws", "v": "ws", "attn_out": "ws", "ffn_in": "ws",
                     "ffn_out": "ws", "qk": "os", "av": "os"}
    gemm = _json("simulate-gemm", "--m", "64", "--k", "128", "--n", "128", "--dataflow", "OS")
    assert gemm["dataflow"] == "os"


@pytest.mark.parametrize("command", ["simulate", "simulate-gemm"])
@pytest.mark.parametrize("value,fragment", [("wz", "'wz' is not a dataflow"),
                                            ("attention=os", "give a bare one")])
def test_a_bad_dataflow_is_one_line_naming_the_flag(command, value, fragment):
    res = _run(command, "--dataflow", value)
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--dataflow:" in lines[0] and fragment in lines[0]
    assert "ws,attention=os" in lines[0]  # the fix shows the form


def _space(tmp_path, dataflow: str):
    return small_study_space(tmp_path, "plans", f"  dataflow: {dataflow}\n")


def test_a_study_sweeps_plans_labelled_by_their_canonical_text(tmp_path):
    space = _space(tmp_path, '[ws, os, "projections=ws,attention=os", '
                             '{projections: ws, attention: os}, "os,ffn=ws"]')
    labels = [c.dataflow for c in space.choices]
    assert labels == ["ws", "os", "ws,attention=os", "os,ffn=ws"]  # the mapping = the text
    for choice in space.choices:
        acc = resolve(space.study, choice).accelerator
        assert str(acc.dataflow_plan) == choice.dataflow
    points = space.points()
    assert {dict(p.hardware)["dataflow"] for p in points} == set(labels)
    assert len({p.point_id for p in points}) == len(points)


def test_a_single_dataflow_keeps_its_point_identity(tmp_path):
    plain = _space(tmp_path, "[ws, os]")
    spelled = _space(tmp_path, '["attention=ws,projections=ws", OS]')
    assert [p.point_id for p in plain.points()] == [p.point_id for p in spelled.points()]


def test_a_bad_plan_is_located_in_the_study(tmp_path):
    with pytest.raises(StudyError) as err:
        _space(tmp_path, '[ws, "ws,heads=os"]')
    text = str(err.value)
    assert "hardware.dataflow[1]" in text and "'heads' is not an op selector" in text
    assert "\n" not in text.strip()
