"""Encoder workload, mask attachment and the Report (additive, JSON-serialisable)."""
from __future__ import annotations

import json

import pytest

import hwmodels
from hwmodels import BlockMask, bert_encoder, simulate
from hwmodels.workload import BUILTIN_CONFIGS


def test_bert_base_ops_and_names():
    wl = bert_encoder(BUILTIN_CONFIGS["bert-base"], seq_len=128, batch=2)
    weights = [op for op in wl.gemms if op.weight_name]
    assert len(weights) == 12 * 6
    q3 = next(op for op in weights if op.layer == 3 and op.role == "q")
    assert q3.weight_name == "bert.encoder.layer.3.attention.self.query.weight"
    assert (q3.m, q3.k, q3.n) == (256, 768, 768)
    ffn_in = next(op for op in weights if op.role == "ffn_in")
    assert (ffn_in.k, ffn_in.n) == (768, 3072)  # K = in_features, N = out_features
    qk = next(op for op in wl.gemms if op.role == "qk")
    assert (qk.m, qk.k, qk.n, qk.count) == (128, 64, 128, 2 * 12)
    # MACs: 4 h^2 + 2 h i per token for the weights + 2 s h for attention, per layer
    s, h, i = 128, 768, 3072
    assert wl.macs == 12 * 2 * (s * (4 * h * h + 2 * h * i) + 2 * s * s * h)


def test_distilbert_config_and_custom_names():
    wl = bert_encoder(BUILTIN_CONFIGS["distilbert"], 64)
    assert len(wl.gemms) == 6 * 8
    assert wl.gemms[0].weight_name == "distilbert.transformer.layer.0.attention.q_lin.weight"
    wl2 = bert_encoder(BUILTIN_CONFIGS["minilm-l6"], 64, weight_names=lambda l, r: f"x.{l}.{r}")
    assert wl2.gemms[0].weight_name == "x.0.q"
    with pytest.raises(ValueError, match="hidden_size"):
        bert_encoder({"num_hidden_layers": 2}, 16)


def test_mask_attachment_errors():
    wl = hwmodels.builtin_workload("minilm-l6", 32)
    acc = hwmodels.load_board("zcu102")
    bad = {"bert.encoder.layer.9.attention.self.query.weight":
           BlockMask.dense((16, 16), (384, 384))}
    with pytest.raises(ValueError) as err:
        simulate(wl, acc, bad)
    msg = str(err.value)
    assert "layer.9" in msg and "bert.encoder.layer.0.attention.self.query.weight" in msg
    wrong_shape = {"bert.encoder.layer.0.intermediate.dense.weight":
                   BlockMask.dense((16, 16), (384, 1536))}  # (in, out) instead of (out, in)
    with pytest.raises(ValueError, match="out_features"):
        simulate(wl, acc, wrong_shape)


def test_masks_reach_their_ops_and_dense_strategy_ignores_them():
    wl = hwmodels.builtin_workload("minilm-l6", 64)
    acc = hwmodels.load_board("zcu102")
    name = "bert.encoder.layer.2.intermediate.dense.weight"
    masks = {name: BlockMask.random((32, 32), (1536, 384), 0.25, seed=0)}
    rep = simulate(wl, acc, masks)
    op = next(o for o in rep.ops if o.weight_name == name)
    assert op.density == pytest.approx(0.25) and op.tiles_skipped > 0
    assert all(o.tiles_skipped == 0 for o in rep.ops if o.weight_name != name)
    dense_acc = hwmodels.load_board("zcu102", {"sparse_strategy": "dense"})
    d = simulate(wl, dense_acc, masks)
    assert d.total_cycles == simulate(wl, dense_acc).total_cycles > rep.total_cycles


def test_report_is_additive_and_json():
    wl = hwmodels.builtin_workload("minilm-l6", 32)
    acc = hwmodels.load_board("zcu102", {"sparse_strategy": "compact"})
    masks = {op.weight_name: BlockMask.random((16, 16), (op.n, op.k), 0.5, seed=i)
             for i, op in enumerate(wl.gemms) if op.weight_name}
    rep = simulate(wl, acc, masks)
    for f in ("total_cycles", "compute_cycles", "fill_drain_cycles", "stall_cycles",
              "index_overhead_cycles", "vector_cycles", "dram_bytes"):
        assert getattr(rep, f) == pytest.approx(sum(getattr(o, f) for o in rep.ops))
    assert rep.total_cycles == pytest.approx(
        rep.compute_cycles + rep.fill_drain_cycles + rep.stall_cycles
        + rep.index_overhead_cycles + rep.vector_cycles)
    assert rep.total_energy_pj == pytest.approx(sum(o.total_energy_pj for o in rep.ops))
    assert rep.latency_ms == pytest.approx(rep.total_cycles / 200e3)
    assert 0 < rep.utilization <= 1 and rep.load_imbalance >= 1
    assert rep.index_bytes > 0
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["engine"] == "analytical" and len(d["ops"]) == len(rep.ops)
    assert set(d["resources"]["dsp"]) == {"used", "available", "fraction"}
    assert "latency" in rep.table() and "ffn_in" in rep.table()


def test_report_says_sequences_per_second_of_its_batch():
    acc = hwmodels.load_board("zcu102")
    rep = simulate(hwmodels.builtin_workload("minilm-l6", 32, batch=4), acc)
    assert rep.batch == 4
    assert rep.sequences_per_s == 4 * 1e3 / rep.latency_ms
    d = rep.to_dict(ops=False)
    assert d["batch"] == 4 and d["sequences_per_s"] == rep.sequences_per_s
    assert "throughput_inf_s" not in d
