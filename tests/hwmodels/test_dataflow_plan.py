"""A dataflow per op type (hwmodels.dataflow.DataflowPlan): parsed once into one canonical form,
a plan with one dataflow for every op equals that dataflow exactly, a mixed plan's per-op
results are those of each op's own dataflow (the workload restricted to each op set), both
engines honour it and agree within 3%, and the batched path equals simulate exactly."""
from __future__ import annotations

import dataclasses
import itertools

import pytest

import hwmodels
from hwmodels import BlockMask, simulate
from hwmodels.batch import simulate_points
from hwmodels.board_schema import BoardError
from hwmodels.dataflow import DataflowPlan
from hwmodels.workload import BUILTIN_CONFIGS, GemmOp, Workload

from hw_helpers import board

TINY = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 128,
        "num_attention_heads": 4, "intermediate_size": 256}
MIXED = ["ws,attention=os", "os,attention=ws", "ws,ffn=os,qk=os", "os,q=ws,av=ws"]


@pytest.mark.parametrize("text,canonical", [
    ("ws", "ws"), ("OS", "os"), (" ws , attention = os ", "ws,attention=os"),
    ("projections=ws,attention=os", "ws,attention=os"), ("os,projections=ws", "ws,attention=os"),
    ("attention=os,projections=os", "os"), ("ws,attention=ws,ffn=ws,qk=ws", "ws"),
    ("default=os,ffn=ws,ffn_in=ws", "os,ffn=ws"), ("ws,av=os,qk=os", "ws,qk=os,av=os"),
    ("projections=ws,attention=os,qk=ws", "ws,attention=os,qk=ws"),
    ({"projections": "ws", "attention": "os"}, "ws,attention=os"),
])
def test_parse_gives_one_canonical_form(text, canonical):
    plan = DataflowPlan.parse(text)
    assert str(plan) == canonical
    assert DataflowPlan.parse(str(plan)) == plan  # the label round-trips
    assert plan.single == (canonical if "," not in canonical else None)


@pytest.mark.parametrize("text,fragment", [
    ("attention=os", "give a bare one"), ("projections=ws", "give a bare one"),
    ("xs", "'xs' is not a dataflow"), ("ws,heads=os", "'heads' is not an op selector"),
    ("ws,qk=os,qk=ws", "'qk' is given twice; give each selector once"),
    ("ws,os", "a bare dataflow is given twice"), ("", "is not a dataflow"),
])
def test_bad_plans_are_one_line_errors_with_the_fix(text, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        DataflowPlan.parse(text)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"dataflow {text!r}: ")
    assert "give" in message.split(";", 1)[1]  # the fix follows the problem


def test_each_op_gets_the_dataflow_of_its_most_specific_selector():
    plan = DataflowPlan.parse("os,attention=ws,ffn=ws,ffn_out=os,av=os")
    ops = {op.role: op for op in hwmodels.bert_encoder(TINY, 16).gemms}
    got = {role: plan.of(op) for role, op in ops.items()}
    assert got == {"q": "os", "k": "os", "v": "os", "attn_out": "os", "ffn_in": "ws",
                   "ffn_out": "os", "qk": "ws", "av": "os"}
    # role-less GEMMs follow their kind
    assert plan.of(GemmOp("g", 8, 8, 8)) == "os"
    assert plan.of(GemmOp("a", 8, 8, 8, kind="activation")) == "ws"


def test_board_yaml_accepts_text_and_mapping_and_names_the_key(tmp_path):
    acc = board(dataflow={"projections": "ws", "attention": "os"})
    assert (acc.dataflow, acc.dataflow_overrides) == ("ws", (("attention", "os"),))
    assert acc == board(dataflow="projections=ws,attention=os")
    assert board(dataflow="os") == board(dataflow="attention=os,projections=os")
    assert board().dataflow_overrides == ()  # the presets: one dataflow, as before
    with pytest.raises(BoardError, match=r"dataflow: .*'heads' is not an op selector") as err:
        board(dataflow="ws,heads=os")
    assert "\n" not in str(err.value)
    # to_dict is the YAML layout: the plan as its text, and it loads back to the same design
    data = acc.to_dict()
    assert data["dataflow"] == "ws,attention=os" and "dataflow_overrides" not in data
    data["buffers"] = {k: v for k, v in data["buffers"].items()}
    back = hwmodels.accelerator_from_dict({k: v for k, v in data.items() if k != "source"})
    assert dataclasses.replace(back, source="") == dataclasses.replace(acc, source="")


def _masks(wl, block=(16, 16), density=0.5):
    return {op.weight_name: BlockMask.random(block, (op.n, op.k), density, seed=i)
            for i, op in enumerate(wl.gemms) if op.weight_name}


@pytest.mark.parametrize("df", ["ws", "os"])
@pytest.mark.parametrize("strategy", ["tile-skip", "compact"])
def test_a_plan_with_one_dataflow_for_every_op_equals_that_dataflow_exactly(df, strategy):
    wl = hwmodels.bert_encoder(TINY, 32)
    masks = _masks(wl)
    single = board(dataflow=df, sparse_strategy=strategy)
    # a non-canonical plan that names every selector with the same dataflow, built directly:
    # routing through the plan must not change a bit
    every = tuple((s, df) for s in ("attention", "ffn", "q", "k", "v", "attn_out", "qk", "av"))
    spelled = dataclasses.replace(single, dataflow_overrides=every)
    ref = simulate(wl, single, masks)
    assert simulate(wl, spelled, masks) == ref
    parsed = board(dataflow=",".join([df] + [f"{s}={d}" for s, d in every]),
                   sparse_strategy=strategy)
    assert parsed == single and simulate(wl, parsed, masks) == ref


def _restricted(wl: Workload, acc, keep: str) -> Workload:
    """The ops whose GEMM runs in `keep` (a vector op goes with the GEMM before it, so each
    fusion group stays whole and in order)."""
    ops, producer = [], None
    for op in wl.ops:
        if isinstance(op, GemmOp):
            producer = acc.dataflow_of(op)
        if producer == keep:
            ops.append(op)
    return dataclasses.replace(wl, ops=tuple(ops))


@pytest.mark.parametrize("plan", MIXED)
@pytest.mark.parametrize("preload,vector", [("serial", "none"), ("overlapped", "fused")])
@pytest.mark.parametrize("strategy", ["tile-skip", "compact"])
def test_a_mixed_plan_is_the_sum_of_each_op_set_under_its_own_dataflow(plan, preload, vector,
                                                                        strategy):
    wl = hwmodels.bert_encoder(TINY, 32)
    masks = _masks(wl)
    over = {"sparse_strategy": strategy, "weight_preload": preload, "vector_overlap": vector,
            "pe_array": {"rows": 16, "cols": 16}}
    mixed = board(dataflow=plan, **over)
    rep = simulate(wl, mixed, masks)
    by_name = {o.name: o for o in rep.ops}
    total = 0.0
    for df in ("ws", "os"):
        part = _restricted(wl, mixed, df)
        sub = {k: v for k, v in masks.items() if k in set(part.weight_names)}
        alone = simulate(part, board(dataflow=df, **over), sub or None)
        for o in alone.ops:  # each op exactly as under its own dataflow
            assert by_name[o.name] == o, o.name
        total += alone.total_cycles
    assert {o.dataflow for o in rep.ops if o.kind == "gemm"} == {"ws", "os"}
    assert rep.total_cycles == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("plan", ["ws,attention=os", "os,ffn=ws"])
@pytest.mark.parametrize("preload,vector", list(itertools.product(("serial", "overlapped"),
                                                                  ("none", "fused"))))
def test_engines_agree_within_3_percent_on_a_mixed_plan(plan, preload, vector):
    cfg = dict(BUILTIN_CONFIGS["bert-base"], num_hidden_layers=1)
    wl = hwmodels.bert_encoder(cfg, 128)
    masks = _masks(wl)
    for strategy in ("tile-skip", "compact"):
        acc = board(dataflow=plan, sparse_strategy=strategy, weight_preload=preload,
                    vector_overlap=vector)
        a = simulate(wl, acc, masks)
        e = simulate(wl, acc, masks, engine="event")
        assert abs(a.total_cycles - e.total_cycles) <= 0.03 * e.total_cycles
        for oa, oe in zip(a.ops, e.ops):
            assert oa.dataflow == oe.dataflow
            assert abs(oa.total_cycles - oe.total_cycles) <= 0.03 * oe.total_cycles, oa.name


def test_simulate_points_equals_simulate_exactly_for_plans():
    wl = hwmodels.bert_encoder(TINY, 32)
    masks = _masks(wl, (16, 8), 0.4)
    accs = [board(dataflow=plan, clock_mhz=clk, sparse_strategy="compact",
                  dram={"bandwidth_gb_s": bw}, pe_array={"rows": 8, "cols": 16})
            for plan, clk, bw in itertools.product(["ws", *MIXED], (150.0, 300.0), (0.5, 19.2))]
    for acc, rep in zip(accs, simulate_points(wl, accs, masks)):
        assert rep == dataclasses.replace(simulate(wl, acc, masks), ops=())


def test_same_shape_gemms_of_different_dataflows_are_not_shared():
    """simulate maps identical unmasked ops once: a weight and an attention GEMM of the same
    shape under different dataflows must still get their own schedules."""
    w = GemmOp("w", 64, 64, 64, weight_name="w.weight", role="q")
    a = GemmOp("a", 64, 64, 64, role="qk", kind="activation")
    wl = Workload("pair", (w, a))
    acc = board(dataflow="ws,attention=os")
    rep = simulate(wl, acc)
    assert [o.dataflow for o in rep.ops] == ["ws", "os"]
    assert rep.ops[0].total_cycles == simulate(Workload("w", (w,)), acc).total_cycles
    assert rep.ops[1].total_cycles == simulate(Workload("a", (a,)), board(dataflow="os")
                                               ).total_cycles
