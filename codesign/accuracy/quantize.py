"""Fake quantization: a (pruned) model evaluated at the precision of its accelerator.

What is modelled, for the GEMMs the hardware model runs on its PE array with weights, i.e. the
encoder's prunable matrices (Q, K, V, attention output, FFN in, FFN out: the
``structure.prunable`` names, the same matrices `hwmodels.workload` maps):

* weights: per output channel (one row of the torch ``[out, in]`` weight), symmetric, at the
  precision's weight bits: scale = max |w| of the row / (2^(b-1) - 1), w <- round(w / scale)
  clamped to +-(2^(b-1) - 1), times scale. A pruned (zero) weight stays exactly zero;
* activations entering those GEMMs: per tensor, symmetric, at the activation bits, the scale
  from the largest |x| seen over the recipe's ``quant_calib_examples`` training sentences
  (codesign.accuracy.recipe.Recipe, 256 by default; a seeded sample of the training split,
  never the dev split; "max" calibration),
  measured with the weights already quantized, over real tokens (padding positions left out);
* ``fp16``: weights and those activations rounded to IEEE half precision (no calibration).

What stays in fp32 (stated in docs/accuracy.md "Precision"): embeddings, LayerNorm, softmax,
GELU, residual adds, biases, the attention matmuls QK^T and AV (activation x activation; the
hardware model runs them at the activation width), the pooler and the classifier, and the
accumulation (int32 on the hardware: exact for these sizes, so fp32 accumulation of the
dequantized values is the same up to float rounding). Outputs are not requantized. What is
ignored: integer-only kernels (no integer GELU/softmax approximations), per-channel activation
scales, quantization-aware training.

No torch import at module level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from hwmodels.accelerator import PRECISIONS, canonical_precision

#: the precision of an unquantized measurement (what every record before precision said)
FP32 = "fp32"
#: the seeded stage of the training split the calibration sentences come from
#: (0 dense, 1 retrain, 2 rgl, 3 calibrated pruning; see codesign.accuracy.dense.train_split)
QUANT_CALIB_STAGE = 4


@dataclass(frozen=True)
class QuantScheme:
    """Bits of the weights and of the activations entering the quantized GEMMs (0 bits:
    floating point, see `floating`)."""

    name: str
    weight_bits: int
    activation_bits: int
    floating: bool = False


def accuracy_precision(name: str | None) -> str:
    """The canonical precision of an accuracy measurement: ``fp32`` (None too) or a hardware
    precision (hwmodels.accelerator: int8 -> w8a8, int16 -> w16a16); ValueError naming the
    choices otherwise."""
    if name is None or str(name).lower() == FP32:
        return FP32
    try:
        return canonical_precision(str(name).lower())
    except ValueError:
        raise ValueError(f"precision {name!r}: unknown; use fp32 or one of "
                         f"{', '.join(PRECISIONS)} (int8, int16 are aliases)") from None


def scheme(name: str) -> QuantScheme | None:
    """The quantization of a precision name; None for fp32 (nothing to do)."""
    name = accuracy_precision(name)
    if name == FP32:
        return None
    spec = PRECISIONS[name]
    return QuantScheme(name, spec.weight_bits, spec.activation_bits, spec.floating)


def quantize_weight_per_channel(weight: Any, bits: int) -> Any:
    """`weight` [out, in] fake-quantized per output row, symmetric at `bits` (a new tensor)."""
    import torch

    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    return (torch.clamp(torch.round(w / scale), -qmax, qmax) * scale).to(weight.dtype)


def quantize_tensor(x: Any, scale: float, bits: int) -> Any:
    """`x` fake-quantized per tensor, symmetric at `bits` with the calibrated `scale`."""
    import torch

    qmax = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale


def quantized_modules(model: Any, structure: Any) -> dict[str, Any]:
    """Parameter name -> the torch Linear holding it, for the prunable encoder matrices."""
    modules = dict(model.named_modules())
    out = {}
    for name, _layer, _role in structure.prunable(model):
        owner = name.rsplit(".", 1)[0]
        if owner not in modules:
            raise ValueError(f"quantize: no module {owner!r} holds {name!r}")
        out[name] = modules[owner]
    return out


def _calibrate_max_abs(model: Any, modules: Mapping[str, Any],
                       batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The largest |x| entering each module over the calibration batches (no grad), over the
    real tokens only: positions the batch's attention mask marks as padding are left out (the
    model masks them; their values do not reach a real token's output)."""
    import torch

    seen = {name: 0.0 for name in modules}
    tokens: dict[str, Any] = {}

    def observe(_mod, args, _name):
        x = args[0].detach().abs()
        mask = tokens.get("mask")
        if mask is not None and x.dim() >= 2 and tuple(x.shape[:2]) == tuple(mask.shape):
            x = x[mask]
        if x.numel():
            seen[_name] = max(seen[_name], float(x.max()))

    handles = [module.register_forward_pre_hook(
        lambda mod, args, _name=name: observe(mod, args, _name))
        for name, module in modules.items()]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                inputs = {k: torch.as_tensor(v).to(device) for k, v in batch.items()}
                mask = inputs.get("attention_mask")
                tokens["mask"] = None if mask is None else mask.bool()
                model(**inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def fake_quantize(model: Any, structure: Any, precision: str, *,
                  calibration: Iterable[Mapping[str, Any]] | None) -> list[Any]:
    """Fake-quantize `model` in place at `precision` (module docstring): weights rewritten,
    activation quantizers attached as forward pre-hooks. Returns the hook handles (remove them
    to drop the activation quantization; the weights stay quantized). fp32: nothing, [].
    `calibration`: tokenised training batches (needed for integer activations)."""
    import torch

    q = scheme(precision)
    if q is None:
        return []
    modules = quantized_modules(model, structure)
    with torch.no_grad():
        for module in modules.values():
            w = module.weight
            w.copy_(w.half().to(w.dtype) if q.floating
                    else quantize_weight_per_channel(w, q.weight_bits))
    if q.floating:
        def half(_mod, args):
            return (args[0].half().to(args[0].dtype), *args[1:])
        return [m.register_forward_pre_hook(half) for m in modules.values()]
    if calibration is None:
        raise ValueError(f"quantize at {q.name}: the activation scales need calibration "
                         "batches (a few hundred training sentences)")
    qmax = 2 ** (q.activation_bits - 1) - 1
    peaks = _calibrate_max_abs(model, modules, calibration)
    handles = []
    for name, module in modules.items():
        scale = peaks[name] / qmax if peaks[name] > 0 else 1.0

        def act(_mod, args, _scale=scale):
            return (quantize_tensor(args[0], _scale, q.activation_bits), *args[1:])
        handles.append(module.register_forward_pre_hook(act))
    return handles
