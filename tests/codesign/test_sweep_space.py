"""The design space: typed design points whose ids are a storage contract (stored studies resume
by them), accelerator choices resolved once, and the frozen job the workers receive."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hwmodels import Accelerator, BlockShape

from codesign.study import AcceleratorChoice, accelerator_choices, load_study, resolve
from codesign.sweep import DENSE, DesignSpace, HardwareJob, MaskSource

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"

# computed with the code before the typed design point (sweep.py's make_point): they must not
# change, or a re-run of a stored study would recompute every point
TINY_CONTEXT = "38759749a91a8f97"
TINY_IDS = {
    ("dense", 0.0, "16x16"): "dfa1e30cc286124e",
    ("dense", 0.0, "32x32"): "521ffdc8b206649f",
    ("16x16", 0.5, "16x16"): "f5a62eacb5c42e0d",
    ("32x32", 0.75, "16x16"): "1c85ceb210ecc00e",
    ("32x32", 0.75, "32x32"): "cb00210acfd81db3",
}

SWEPT = """\
name: synth
model: {name: minilm-l6, seq_len: 32, batch: 2}
tasks: [sst2, mrpc]
pruning: {method: magnitude, block_shapes: [16x16, 4X4], prune_ratios: [0.5, 0.3333333333]}
accuracy: {measure: false}
hardware:
  board: zcu102
  pe_array: [16x16, 8 x 8]
  clock_mhz: [200, 250.5]
  dataflow: [WS, os]
  sparse_strategy: [tile_skip, compact]
  precision: [int8, int16]
  double_buffering: [true, false]
  buffers_kib: {weight: [256, 512.5], input: 128}
  overrides: {dram: {bandwidth_gbps: 10}}
objectives: [{latency_ms: min}, {energy_mj: min}]
constraints: {fits_board: false}
"""


@pytest.fixture(scope="module")
def tiny_space():
    return DesignSpace.of(load_study(TINY, check_fit=False))


def test_point_ids_of_tiny_are_pinned(tiny_space):
    assert tiny_space.context == TINY_CONTEXT
    points = tiny_space.points()
    assert len(points) == 10
    by_key = {(p.block_shape, p.prune_ratio, dict(p.hardware)["pe_array"]): p for p in points}
    for key, pid in TINY_IDS.items():
        assert by_key[key].point_id == pid, key


def test_point_ids_of_every_swept_key_are_pinned(tmp_path):
    path = tmp_path / "synth.yaml"
    path.write_text(SWEPT)
    space = DesignSpace.of(load_study(path, check_fit=False))
    points = space.points()
    assert space.context == "561062841bd78542" and len(points) == 1152
    ids = {p.point_id: p for p in points}
    first = ids["031c767b0d5154d8"]
    assert first.block is None and first.hardware == (
        ("buffers_kib.input", 128.0), ("buffers_kib.weight", 256.0), ("clock_mhz", 200.0),
        ("dataflow", "ws"), ("double_buffering", True), ("pe_array", "16x16"),
        ("precision", "int8"), ("sparse_strategy", "dense"))
    later = ids["288402799729bf57"]
    assert (later.task, later.block, later.prune_ratio) == ("mrpc", BlockShape(16, 16), 0.333333)
    assert later.accelerator == AcceleratorChoice(
        pe_rows=16, pe_cols=16, clock_mhz=250.5, dataflow="os", sparse_strategy="compact",
        precision="int16", double_buffering=True,
        buffers_kib=(("weight", 256.0), ("input", 128.0)))
    assert later.params()["array"] == "16x16" and later.params()["buffer_weight_kib"] == 256.0


def test_points_hold_typed_values(tiny_space):
    points = tiny_space.points()
    dense = [p for p in points if p.block is None]
    assert len(dense) == 2
    assert all(p.block_shape == DENSE and p.prune_ratio == 0.0 and p.sparse_strategy == DENSE
               for p in dense)
    sparse = [p for p in points if p.block is not None]
    assert {p.block for p in sparse} == {BlockShape(16, 16), BlockShape(32, 32)}
    assert {p.block_shape for p in sparse} == {"16x16", "32x32"}
    assert {(p.accelerator.pe_rows, p.accelerator.pe_cols) for p in points} == {(16, 16),
                                                                                 (32, 32)}


def test_a_record_maps_back_to_its_point(tiny_space):
    for p in tiny_space.points():
        rec = {**p.params(), "point_id": p.point_id}
        assert tiny_space.point_of_record(rec) == p
        assert tiny_space.point_of_record(rec, dense=True).block is None


def test_choices_round_trip_through_study_values(tiny_space):
    for choice in tiny_space.choices:
        assert AcceleratorChoice.from_study_values(choice.study_values()) == choice
    assert [c.study_values() for c in accelerator_choices(tiny_space.study)] == \
        tiny_space.study.hardware.combinations()


def test_a_choice_is_resolved_once(tiny_space, monkeypatch):
    import hwmodels

    calls = []
    real = hwmodels.load_board
    monkeypatch.setattr(hwmodels, "load_board",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    choice = tiny_space.choices[0].with_strategy("compact")  # not resolved by anyone yet
    first = resolve(tiny_space.study, choice)
    again = resolve(tiny_space.study, AcceleratorChoice.from_study_values(choice.study_values()))
    assert again is first and len(calls) == 1
    assert isinstance(first.accelerator, Accelerator)
    assert first.accelerator.sparse_strategy == "compact"
    assert (first.accelerator.pe_array.rows, first.accelerator.pe_array.cols) == (16, 16)
    assert first.overrides["pe_array"] == {"rows": 16, "cols": 16}
    assert first.fit.fits and first.fit.resources["dsp"]["used"] > 0


def test_the_worker_job_is_frozen_and_picklable(tiny_space):
    resolved = resolve(tiny_space.study, tiny_space.choices[1])
    job = HardwareJob(config={"hidden_size": 384}, seq_len=32, batch=1,
                      accelerator=resolved.accelerator, fit=resolved.fit, engine="analytical",
                      masks=MaskSource("dense", block=BlockShape(16, 16)))
    with pytest.raises(AttributeError):
        job.batch = 2  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(job))
    assert back.accelerator == resolved.accelerator and back.masks.block == BlockShape(16, 16)
