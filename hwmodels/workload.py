"""Workloads: GEMM and vector ops, and a BERT-family encoder built from a Hugging Face config.

A GEMM op is Y[M,N] = X[M,K] @ W[K,N]; for a weight GEMM, K = in_features and N = out_features of
the nn.Linear it stands for, and `weight_name` is that parameter's checkpoint name so that a mask
file attaches without glue. Activation x activation GEMMs (QK^T and AV per head) are dense and
carry `count` = batch x heads instances. Vector ops (softmax, LayerNorm, GELU, residual adds) are
element counts with a number of passes over the data.

Modelled: the six weight GEMMs, the two attention matmuls, softmax, two residual adds, two
LayerNorms and GELU per layer. Ignored: embeddings, the pooler/classifier head, biases (folded
into the output write), the attention mask and dropout (inference).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping

VectorKind = Literal["softmax", "layernorm", "gelu", "add"]

#: passes over each element (reads of the on-chip copy) per vector kind: softmax = max, exp+sum,
#: scale; LayerNorm = mean, variance, normalise+affine; GELU = one polynomial/erf approximation;
#: residual add = one pass over two inputs.
VECTOR_PASSES: dict[str, int] = {"softmax": 3, "layernorm": 3, "gelu": 1, "add": 1}
#: operand tensors read from DRAM per kind (the residual add reads two)
VECTOR_INPUTS: dict[str, int] = {"softmax": 1, "layernorm": 1, "gelu": 1, "add": 2}

ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")


@dataclass(frozen=True)
class GemmOp:
    """Y[m, n] = X[m, k] @ W[k, n], repeated `count` times (e.g. per attention head)."""

    name: str
    m: int
    k: int
    n: int
    count: int = 1
    weight_name: str | None = None
    layer: int | None = None
    role: str | None = None
    kind: Literal["weight", "activation"] = "weight"

    def __post_init__(self) -> None:
        for key in ("m", "k", "n", "count"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"GemmOp {self.name!r}: {key} must be >= 1, got {getattr(self, key)}")

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.count


@dataclass(frozen=True)
class VectorOp:
    """An element-wise/row-wise op over `elements` values on the vector unit."""

    name: str
    kind: VectorKind
    elements: int
    layer: int | None = None

    @property
    def passes(self) -> int:
        return VECTOR_PASSES[self.kind]

    @property
    def inputs(self) -> int:
        return VECTOR_INPUTS[self.kind]


@dataclass(frozen=True)
class Workload:
    name: str
    ops: tuple[GemmOp | VectorOp, ...]
    seq_len: int | None = None
    batch: int = 1
    config: Mapping = field(default_factory=dict)

    @property
    def gemms(self) -> tuple[GemmOp, ...]:
        return tuple(op for op in self.ops if isinstance(op, GemmOp))

    @property
    def weight_names(self) -> tuple[str, ...]:
        return tuple(op.weight_name for op in self.gemms if op.weight_name)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.gemms)


# --------------------------------------------------------------------------- built-in configs
BUILTIN_CONFIGS: dict[str, dict] = {
    # bert-base-uncased config.json
    "bert-base": {"model_type": "bert", "num_hidden_layers": 12, "hidden_size": 768,
                  "num_attention_heads": 12, "intermediate_size": 3072},
    # distilbert-base-uncased config.json
    "distilbert": {"model_type": "distilbert", "n_layers": 6, "dim": 768, "n_heads": 12,
                   "hidden_dim": 3072},
    # sentence-transformers/all-MiniLM-L6-v2 config.json
    "minilm-l6": {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384,
                  "num_attention_heads": 12, "intermediate_size": 1536},
}

@dataclass(frozen=True)
class EncoderLayout:
    """Where the encoder's weight matrices sit in a *ForSequenceClassification checkpoint:
    ``prefix + layer_template.format(layer=i) + suffix`` (``bert.encoder.layer.3.`` then
    ``attention.self.query.weight``), one suffix per role. `codesign.checkpoints` builds its
    ModelStructures from the same table."""

    prefix: str  # the base-model attribute of the task model
    layer_template: str
    role_suffixes: tuple[tuple[str, str], ...]  # (role, suffix) in ROLES order

    def weight_name(self, layer: int, role: str) -> str:
        """The checkpoint parameter name of one weight matrix of the encoder."""
        suffix = dict(self.role_suffixes)[role]
        return self.prefix + self.layer_template.format(layer=layer) + suffix


_BERT_SUFFIXES = (("q", "attention.self.query.weight"), ("k", "attention.self.key.weight"),
                  ("v", "attention.self.value.weight"),
                  ("attn_out", "attention.output.dense.weight"),
                  ("ffn_in", "intermediate.dense.weight"), ("ffn_out", "output.dense.weight"))

#: model_type -> parameter layout of its encoder (the one home of these names)
ENCODER_LAYOUTS: dict[str, EncoderLayout] = {
    "bert": EncoderLayout("bert.", "encoder.layer.{layer}.", _BERT_SUFFIXES),
    "roberta": EncoderLayout("roberta.", "encoder.layer.{layer}.", _BERT_SUFFIXES),
    "distilbert": EncoderLayout(
        "distilbert.", "transformer.layer.{layer}.",
        (("q", "attention.q_lin.weight"), ("k", "attention.k_lin.weight"),
         ("v", "attention.v_lin.weight"), ("attn_out", "attention.out_lin.weight"),
         ("ffn_in", "ffn.lin1.weight"), ("ffn_out", "ffn.lin2.weight"))),
}


def default_weight_name(model_type: str) -> Callable[[int, str], str]:
    """Checkpoint parameter names of a *ForSequenceClassification model of this type (an
    unknown type is named as BERT)."""
    return ENCODER_LAYOUTS.get(model_type, ENCODER_LAYOUTS["bert"]).weight_name


def _dims(config: Mapping) -> tuple[int, int, int, int]:
    keys = (("num_hidden_layers", "n_layers"), ("hidden_size", "dim"),
            ("num_attention_heads", "n_heads"), ("intermediate_size", "hidden_dim"))
    out = []
    for a, b in keys:
        v = config.get(a, config.get(b))
        if v is None:
            raise ValueError(f"model config: missing key {a!r} (or DistilBERT's {b!r})")
        out.append(int(v))
    layers, hidden, heads, inter = out
    if hidden % heads:
        raise ValueError(f"model config: hidden size {hidden} is not divisible by {heads} heads")
    return layers, hidden, heads, inter


def bert_encoder(config: Mapping, seq_len: int, batch: int = 1, *,
                 weight_names: Callable[[int, str], str] | None = None,
                 name: str | None = None) -> Workload:
    """The encoder stack of a BERT-family model as ops (see the module docstring)."""
    if seq_len < 1 or batch < 1:
        raise ValueError(f"bert_encoder: seq_len ({seq_len}) and batch ({batch}) must be >= 1")
    layers, hidden, heads, inter = _dims(config)
    names = weight_names or default_weight_name(str(config.get("model_type", "bert")))
    d_head = hidden // heads
    m = seq_len * batch
    ops: list[GemmOp | VectorOp] = []

    def w(layer: int, role: str, k: int, n: int) -> GemmOp:
        return GemmOp(name=f"L{layer}.{role}", m=m, k=k, n=n, weight_name=names(layer, role),
                      layer=layer, role=role)

    for i in range(layers):
        ops += [w(i, "q", hidden, hidden), w(i, "k", hidden, hidden), w(i, "v", hidden, hidden)]
        ops.append(GemmOp(f"L{i}.qk", m=seq_len, k=d_head, n=seq_len, count=batch * heads,
                          layer=i, role="qk", kind="activation"))
        ops.append(VectorOp(f"L{i}.softmax", "softmax", batch * heads * seq_len * seq_len, i))
        ops.append(GemmOp(f"L{i}.av", m=seq_len, k=seq_len, n=d_head, count=batch * heads,
                          layer=i, role="av", kind="activation"))
        ops.append(w(i, "attn_out", hidden, hidden))
        ops.append(VectorOp(f"L{i}.attn_add", "add", m * hidden, i))
        ops.append(VectorOp(f"L{i}.attn_ln", "layernorm", m * hidden, i))
        ops.append(w(i, "ffn_in", hidden, inter))
        ops.append(VectorOp(f"L{i}.gelu", "gelu", m * inter, i))
        ops.append(w(i, "ffn_out", inter, hidden))
        ops.append(VectorOp(f"L{i}.ffn_add", "add", m * hidden, i))
        ops.append(VectorOp(f"L{i}.ffn_ln", "layernorm", m * hidden, i))
    label = name or str(config.get("_name_or_path") or config.get("model_type", "encoder"))
    return Workload(name=label, ops=tuple(ops), seq_len=seq_len, batch=batch, config=dict(config))


def builtin_workload(model: str, seq_len: int, batch: int = 1) -> Workload:
    """bert_encoder for a built-in config name (bert-base, distilbert, minilm-l6)."""
    if model not in BUILTIN_CONFIGS:
        raise ValueError(f"model {model!r}: unknown built-in (known: {', '.join(BUILTIN_CONFIGS)})")
    return bert_encoder(BUILTIN_CONFIGS[model], seq_len, batch, name=model)
