"""A dataflow per op type: `DataflowPlan`, parsed once at the edge (board YAML, CLI, study).

What is modelled: which dataflow (ws, os) the PE array uses for each GEMM of a workload, chosen
by the op's kind and role (`hwmodels.workload.GemmOp`). A plan is written as comma-separated
entries, or as the same entries in a mapping (``{projections: ws, attention: os}``):

* a bare dataflow (or ``default=DF``): every GEMM the other entries do not name;
* ``projections=DF``: every weight GEMM (kind "weight": q, k, v, attn_out, ffn_in, ffn_out, and
  role-less weight GEMMs such as `hwmodels.simulate.gemm_workload`'s);
* ``ffn=DF``: the two FFN GEMMs (ffn_in, ffn_out);
* ``attention=DF``: every activation x activation GEMM (kind "activation": qk = QK^T per head,
  av = attention x V per head);
* a role (``q``, ``k``, ``v``, ``attn_out``, ``ffn_in``, ``ffn_out``, ``qk``, ``av``): that role.

The most specific entry wins: role > ffn > projections / attention > bare. A plan must say the
dataflow of every GEMM: a bare entry, or both ``projections`` and ``attention``. One plain
dataflow (``ws``) is the plan of today's accelerators and gives bit-identical results.

The canonical form (`DataflowPlan.parse`, `str(plan)`) is the one value kept in an
`Accelerator`, a study's point identity and its records: the weight GEMMs' dataflow first, as
the bare entry, then only the entries that change something, in the order attention, ffn, roles:
``projections=ws,attention=os`` and ``os,projections=ws`` are both ``ws,attention=os``, and a
plan with one dataflow for every op is that dataflow (``ws``).

Ignored: what supporting two dataflows costs in hardware (PE input and accumulator muxes; the
resource estimate is that of one array) and any switch-over time between ops of different
dataflows (ops already run one after another with the array drained between them, and their
operands go through DRAM in either case).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, get_args

Dataflow = Literal["ws", "os"]
DATAFLOWS: tuple[str, ...] = get_args(Dataflow)

#: the roles of the two attention GEMMs and of the FFN GEMMs (hwmodels.workload.bert_encoder)
ATTENTION_ROLES = ("qk", "av")
FFN_ROLES = ("ffn_in", "ffn_out")
PROJECTION_ROLES = ("q", "k", "v", "attn_out") + FFN_ROLES
#: selectors in canonical order (after the bare entry); "projections" never survives
#: canonicalisation (it becomes the bare entry)
SELECTORS = ("attention", "projections", "ffn") + PROJECTION_ROLES + ATTENTION_ROLES
_HINT = ("give a dataflow (ws, os) or entries like 'ws,attention=os' / "
         "'projections=ws,attention=os' (selectors: " + ", ".join(SELECTORS) + ")")


@dataclass(frozen=True)
class DataflowPlan:
    """The dataflow of each GEMM, in canonical form (see the module docstring): `default` is
    the weight GEMMs' dataflow (and every op's that `overrides` does not name); `overrides`
    holds (selector, dataflow) pairs in `SELECTORS` order, each one changing something."""

    default: Dataflow = "ws"
    overrides: tuple[tuple[str, Dataflow], ...] = ()

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | DataflowPlan) -> DataflowPlan:
        """The canonical plan of a text (``ws``, ``projections=ws,attention=os``), a mapping of
        the same entries or a plan; ValueError (one line, naming the value and the fix)."""
        if isinstance(value, DataflowPlan):
            return value
        entries = _entries(value)
        named = dict(entries)
        bare = named.pop("default", None)
        if bare is None and not {"projections", "attention"} <= set(named):
            raise ValueError(f"dataflow {_show(value)}: some GEMMs get no dataflow; give a bare "
                             "one for the ops not named (e.g. 'ws,attention=os') or name both "
                             "projections and attention")
        return _canonical(bare, named)

    def of(self, op: Any) -> Dataflow:
        """The dataflow of GEMM `op` (a `GemmOp`: its `role` and `kind` decide)."""
        table = dict(self.overrides)
        role = getattr(op, "role", None)
        if role in table:
            return table[role]
        if role in FFN_ROLES and "ffn" in table:
            return table["ffn"]
        if getattr(op, "kind", "weight") == "activation" and "attention" in table:
            return table["attention"]
        return self.default

    @property
    def single(self) -> Dataflow | None:
        """The one dataflow of every op, or None when the plan mixes them."""
        return None if self.overrides else self.default

    def __str__(self) -> str:
        return ",".join([self.default, *(f"{s}={d}" for s, d in self.overrides)])


def parse_dataflow(value: str | Mapping[str, Any] | DataflowPlan) -> DataflowPlan:
    """`DataflowPlan.parse` (the one parser of a dataflow choice)."""
    return DataflowPlan.parse(value)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else repr(dict(value))


def _dataflow(text: Any, value: Any) -> Dataflow:
    df = str(text).strip().lower()
    if df not in DATAFLOWS:
        raise ValueError(f"dataflow {_show(value)}: {text!r} is not a dataflow; {_HINT}")
    return df  # type: ignore[return-value]


def _entries(value: Any) -> list[tuple[str, Dataflow]]:
    """(selector, dataflow) pairs of a text or mapping ("default" for a bare entry)."""
    if isinstance(value, Mapping):
        pairs = [(str(k).strip().lower(), v) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for part in value.split(","):
            key, eq, df = part.partition("=")
            pairs.append((key.strip().lower(), df) if eq else ("default", key))
    else:
        raise ValueError(f"dataflow {value!r}: expected text or a mapping; {_HINT}")
    out: list[tuple[str, Dataflow]] = []
    for key, df in pairs:
        if key not in SELECTORS and key != "default":
            raise ValueError(f"dataflow {_show(value)}: {key!r} is not an op selector; {_HINT}")
        if key in dict(out):
            what = "a bare dataflow" if key == "default" else repr(key)
            raise ValueError(f"dataflow {_show(value)}: {what} is given twice; give each "
                             "selector once")
        out.append((key, _dataflow(df, value)))
    if not out:
        raise ValueError(f"dataflow {_show(value)}: empty; {_HINT}")
    return out


def _canonical(bare: Dataflow | None, named: dict[str, Dataflow]) -> DataflowPlan:
    """The canonical plan of a bare dataflow and named entries (module docstring)."""
    default = named.get("projections", bare)
    attention = named.get("attention", bare)
    assert default is not None and attention is not None  # checked by the caller
    keep: dict[str, Dataflow] = {}
    if attention != default:
        keep["attention"] = attention
    ffn = named.get("ffn", default)
    if ffn != default:
        keep["ffn"] = ffn
    for role in PROJECTION_ROLES + ATTENTION_ROLES:
        inherited = ffn if role in FFN_ROLES else attention if role in ATTENTION_ROLES \
            else default
        if named.get(role, inherited) != inherited:
            keep[role] = named[role]
    return DataflowPlan(default, tuple((s, keep[s]) for s in SELECTORS if s in keep))
