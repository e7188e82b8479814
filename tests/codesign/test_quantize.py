"""Fake quantization (codesign.accuracy.quantize): closed-form values, the precision in the key,
and the pieces the measurement uses (no model: fast)."""
from __future__ import annotations

import pytest
import torch

from codesign.accuracy import Recipe
from codesign.accuracy.cache import record_key
from codesign.accuracy.quantize import (FP32, accuracy_precision, fake_quantize,
                                        quantize_tensor, quantize_weight_per_channel, scheme)

SHA = "0" * 64


def test_weight_per_output_channel_symmetric_4_bit():
    w = torch.tensor([[1.0, -0.6, 0.26, 0.0], [0.0, 0.0, 0.0, 0.0], [-2.0, 1.1, 0.1, 2.0]])
    q = quantize_weight_per_channel(w, 4)
    # row 0: scale 1/7: -4.2 -> -4, 1.82 -> 2; row 1 all zero; row 2: scale 2/7: 3.85 -> 4,
    # 0.35 -> 0
    expected = torch.tensor([[1.0, -4 / 7, 2 / 7, 0.0], [0.0, 0.0, 0.0, 0.0],
                             [-2.0, 8 / 7, 0.0, 2.0]])
    assert torch.allclose(q, expected)
    assert (q[w == 0] == 0).all()  # pruned weights stay exactly zero


def test_weight_8_bit_error_bounded_by_half_step():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    q = quantize_weight_per_channel(w, 8)
    step = w.abs().amax(dim=1, keepdim=True) / 127
    assert ((q - w).abs() <= step / 2 + 1e-7).all()
    assert len(torch.unique(q[0])) <= 255


def test_activation_per_tensor_clamps_at_the_calibrated_scale():
    x = torch.tensor([0.0, 0.49, 0.51, 1.0, 5.0, -9.0])
    q = quantize_tensor(x, 1.0, 4)  # integers -7..7
    assert q.tolist() == [0.0, 0.0, 1.0, 1.0, 5.0, -7.0]


def test_precision_names_and_schemes():
    assert accuracy_precision(None) == accuracy_precision("FP32") == FP32
    assert accuracy_precision("int8") == "w8a8" and accuracy_precision("int16") == "w16a16"
    assert scheme("fp32") is None
    assert (scheme("w4a8").weight_bits, scheme("w4a8").activation_bits) == (4, 8)
    assert scheme("fp16").floating
    with pytest.raises(ValueError, match="fp32"):
        accuracy_precision("int4")


def test_cache_key_separates_precisions_and_keeps_fp32():
    recipe = Recipe()
    args = (SHA, "sst2", "16x16", 0.5, "oneshot", recipe)
    fp32 = record_key(*args)
    assert record_key(*args, "fp32") == fp32  # fp32 keys are those of before
    keys = {p: record_key(*args, p) for p in ("w8a8", "w4a8", "w8a16", "fp16")}
    assert len({fp32, *keys.values()}) == 5
    # the dense point: one key per precision too
    assert record_key(SHA, "sst2", None, 0.0, "oneshot", recipe, "w8a8") != record_key(
        SHA, "sst2", None, 0.0, "oneshot", recipe)


class _Tiny(torch.nn.Module):
    """Two Linear layers standing in for an encoder; `structure.prunable` names their weights."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 2)
        with torch.no_grad():
            self.a.weight.copy_(torch.randn(8, 8, generator=g))
            self.b.weight.copy_(torch.randn(2, 8, generator=g))

    def forward(self, x, attention_mask=None):
        return self.b(torch.relu(self.a(x)))


class _Structure:
    def prunable(self, model):
        return [("a.weight", 0, "a"), ("b.weight", 0, "b")]


def test_fake_quantize_weights_and_activation_hooks():
    model = _Tiny()
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1)) * 3
    w_a = model.a.weight.detach().clone()
    handles = fake_quantize(model, _Structure(), "w4a8", calibration=[{"x": x}])
    assert len(handles) == 2
    assert torch.equal(model.a.weight, quantize_weight_per_channel(w_a, 4))
    # each Linear's input is quantized per tensor at 8 bits, scale = max |input| / 127 seen in
    # calibration (run with the weights already quantized, activations not yet)
    lin = torch.nn.functional.linear
    scale_a = float(x.abs().max()) / 127
    h_calib = torch.relu(lin(x, model.a.weight, model.a.bias))
    scale_b = float(h_calib.detach().abs().max()) / 127
    h = torch.relu(lin(quantize_tensor(x, scale_a, 8), model.a.weight, model.a.bias))
    want = lin(quantize_tensor(h, scale_b, 8), model.b.weight, model.b.bias)
    with torch.no_grad():
        assert torch.allclose(model(x), want, atol=1e-6)
    for h in handles:
        h.remove()
    assert torch.equal(model(x), model.b(torch.relu(model.a(x))))
    assert fake_quantize(_Tiny(), _Structure(), "fp32", calibration=None) == []
    with pytest.raises(ValueError, match="calibration"):
        fake_quantize(_Tiny(), _Structure(), "w8a8", calibration=None)


def test_calibration_leaves_padding_out():
    """Positions the attention mask marks as padding do not set the activation scale."""
    x = torch.ones(2, 3, 8)
    x[1, 2] = 1000.0  # a padding position
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    model = _Tiny()
    handles = fake_quantize(model, _Structure(), "w8a8",
                            calibration=[{"x": x, "attention_mask": mask}])
    probe = torch.full((1, 1, 8), 2.0)  # twice the calibrated peak 1.0: clamped to it
    seen = {}
    model.a.register_forward_hook(lambda _m, args, _out: seen.setdefault("in", args[0]))
    with torch.no_grad():
        model(probe)
    assert torch.equal(seen["in"], torch.ones(1, 1, 8))
    for h in handles:
        h.remove()
