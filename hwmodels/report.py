"""OpReport and Report: additive over ops, JSON-serialisable, with a human-readable table.

Every Report figure is the sum of the OpReports' (cycles, bytes, accesses, energy), except the
ratios (utilisation) which are recomputed from the sums, and `load_imbalance`, which is the
worst op's value (imbalance must not be averaged away).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .frozen import adopt

CYCLE_FIELDS = ("total_cycles", "compute_cycles", "fill_drain_cycles", "stall_cycles",
                "index_overhead_cycles", "vector_cycles")


@dataclass(frozen=True)
class OpReport:
    name: str
    kind: str  # "gemm" | "vector"
    layer: int | None
    role: str | None
    weight_name: str | None
    shape: tuple[int, ...]  # (m, k, n) for a GEMM, (elements,) for a vector op
    count: int
    strategy: str
    dataflow: str
    block_shape: str | None
    density: float  # kept weights / weights (1 for dense and activation GEMMs)
    total_cycles: float
    compute_cycles: float
    fill_drain_cycles: float
    stall_cycles: float
    index_overhead_cycles: float
    vector_cycles: float
    dram_bytes: float
    weight_bytes: float
    input_bytes: float
    output_bytes: float
    index_bytes: float
    mandatory_dram_bytes: float
    executed_macs: int
    useful_macs: int
    folds: int
    tiles_total: int
    tiles_skipped: int
    load_imbalance: float
    utilization: float
    buffer_accesses: dict[str, float] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)

    @property
    def total_energy_pj(self) -> float:
        return float(sum(self.energy_pj.values()))


def op_report_of(fields: dict[str, Any]) -> OpReport:
    """An OpReport holding `fields` (every field by name): equal to ``OpReport(**fields)``,
    without the frozen constructor's per-field cost (OpReport has no __post_init__)."""
    return adopt(OpReport, fields)


@dataclass(frozen=True)
class Report:
    workload: str
    batch: int  # sequences per inference (the workload's batch)
    accelerator: str
    engine: str
    engine_version: str
    clock_mhz: float
    pe_macs: int  # R * C
    total_cycles: float
    latency_ms: float
    compute_cycles: float
    fill_drain_cycles: float
    stall_cycles: float
    index_overhead_cycles: float
    vector_cycles: float
    dram_bytes: float
    index_bytes: float
    executed_macs: int
    useful_macs: int
    utilization: float  # executed MACs / (R*C*total cycles)
    effective_utilization: float  # MACs on kept (non-zero) weights / (R*C*total cycles)
    load_imbalance: float  # worst op
    buffer_accesses: dict[str, float]
    energy_pj: dict[str, float]
    resources: dict[str, dict[str, float]]
    fits: bool
    ops: tuple[OpReport, ...]
    #: per layer that the masks removed whole heads or FFN neurons from (hwmodels.structure):
    #: {layer, heads, heads_scored, heads_output, neurons, neurons_kept}; () when none (and then
    #: absent from to_dict, so reports without structured pruning are as before)
    structure: tuple[dict[str, int], ...] = ()

    @property
    def total_energy_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    @property
    def energy_mj(self) -> float:
        return self.total_energy_pj * 1e-9

    @property
    def sequences_per_s(self) -> float:
        """Sequences per second: `batch` sequences every `latency_ms` (inf at zero latency)."""
        return self.batch * 1e3 / self.latency_ms if self.latency_ms > 0 else math.inf

    @property
    def hw_source(self) -> str:
        return f"simulated:{self.engine}/{self.engine_version}"

    def to_dict(self, ops: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["total_energy_pj"] = self.total_energy_pj
        d["energy_mj"] = self.energy_mj
        d["sequences_per_s"] = self.sequences_per_s
        d["hw_source"] = self.hw_source
        if ops:
            d["ops"] = [dict(asdict(o), total_energy_pj=o.total_energy_pj) for o in self.ops]
        else:
            d.pop("ops")
        if not self.structure:
            d.pop("structure")
        return _jsonable(d)

    def table(self, per_op: bool = True, max_ops: int = 40) -> str:
        """A human-readable summary (and per-op rows, grouped by op name without the layer)."""
        lines = [
            f"{self.workload} on {self.accelerator} ({self.engine} engine {self.engine_version}, "
            f"{self.clock_mhz:g} MHz)",
            f"  latency        {self.latency_ms:12.4f} ms   ({self.total_cycles:,.0f} cycles)",
            f"  compute        {self.compute_cycles:14,.0f} cycles",
            f"  fill/drain     {self.fill_drain_cycles:14,.0f} cycles",
            f"  memory stall   {self.stall_cycles:14,.0f} cycles",
            f"  index overhead {self.index_overhead_cycles:14,.0f} cycles",
            f"  vector unit    {self.vector_cycles:14,.0f} cycles",
            f"  utilization    {100 * self.utilization:13.1f} %  (effective, non-zero MACs: "
            f"{100 * self.effective_utilization:.1f} %; worst load imbalance "
            f"{self.load_imbalance:.2f})",
            f"  DRAM traffic   {self.dram_bytes / 1e6:13.3f} MB  (of which indices "
            f"{self.index_bytes / 1e3:.1f} kB)",
            f"  energy         {self.energy_mj:13.4f} mJ   "
            + ", ".join(f"{k} {v / 1e9:.3f}" for k, v in self.energy_pj.items()),
            "  resources      " + ", ".join(
                f"{k.upper()} {int(v['used']):,}/{int(v['available']):,}"
                f" ({100 * v['fraction']:.0f}%)" if math.isfinite(v["fraction"])
                else f"{k.upper()} {int(v['used']):,}/0" for k, v in self.resources.items())
            + ("" if self.fits else "   DOES NOT FIT"),
        ]
        if per_op and self.ops:
            groups: dict[str, list[OpReport]] = {}
            for o in self.ops:
                key = o.name.split(".", 1)[1] if (o.layer is not None and "." in o.name) else o.name
                groups.setdefault(key, []).append(o)
            lines.append("")
            hdr = (f"  {'op':<12}{'n':>4}{'cycles':>14}{'compute':>12}{'fill/drain':>12}"
                   f"{'stall':>11}{'vector':>11}{'DRAM MB':>10}{'util%':>7}{'imbal':>7}{'density':>8}")
            lines.append(hdr)
            for key, os_ in list(groups.items())[:max_ops]:
                cyc = sum(o.total_cycles for o in os_)
                macs = sum(o.executed_macs for o in os_)
                util = macs / (self.pe_macs * cyc) if cyc and self.pe_macs else 0.0
                lines.append(
                    f"  {key:<12}{len(os_):>4}{cyc:>14,.0f}"
                    f"{sum(o.compute_cycles for o in os_):>12,.0f}"
                    f"{sum(o.fill_drain_cycles for o in os_):>12,.0f}"
                    f"{sum(o.stall_cycles for o in os_):>11,.0f}"
                    f"{sum(o.vector_cycles for o in os_):>11,.0f}"
                    f"{sum(o.dram_bytes for o in os_) / 1e6:>10.3f}{100 * util:>7.1f}"
                    f"{max(o.load_imbalance for o in os_):>7.2f}"
                    f"{sum(o.density for o in os_) / len(os_):>8.3f}")
        return "\n".join(lines + self._structure_lines())

    def _structure_lines(self) -> list[str]:
        """One line per layer the masks removed whole heads or neurons from (none: no line)."""
        if not self.structure:
            return []
        out = ["", "  structured pruning carried through (heads with QK^T+softmax / with AV, "
                   "FFN neurons kept):"]
        for s in self.structure:
            out.append(f"    layer {s['layer']:>3}: heads {s['heads_scored']}/{s['heads']} / "
                       f"{s['heads_output']}/{s['heads']}, neurons "
                       f"{s['neurons_kept']}/{s['neurons']}")
        return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):  # numpy scalars
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def combine(*, workload: str, batch: int, accelerator: str, engine: str, engine_version: str,
            clock_mhz: float, pe_macs: int, ops: list[OpReport], resources: dict,
            fits: bool, structure: tuple[dict[str, int], ...] = ()) -> Report:
    """Sum OpReports into a Report."""
    s = {f: float(sum(getattr(o, f) for o in ops)) for f in CYCLE_FIELDS}
    buf: dict[str, float] = {}
    energy: dict[str, float] = {}
    for o in ops:
        for k, v in o.buffer_accesses.items():
            buf[k] = buf.get(k, 0.0) + v
        for k, v in o.energy_pj.items():
            energy[k] = energy.get(k, 0.0) + v
    executed = int(sum(o.executed_macs for o in ops))
    useful = int(sum(o.useful_macs for o in ops))
    total = s["total_cycles"]
    peak = pe_macs * total
    return Report(
        workload=workload, batch=batch, accelerator=accelerator, engine=engine,
        engine_version=engine_version, clock_mhz=clock_mhz, pe_macs=pe_macs,
        total_cycles=total, latency_ms=total / (clock_mhz * 1e3),
        compute_cycles=s["compute_cycles"], fill_drain_cycles=s["fill_drain_cycles"],
        stall_cycles=s["stall_cycles"], index_overhead_cycles=s["index_overhead_cycles"],
        vector_cycles=s["vector_cycles"],
        dram_bytes=float(sum(o.dram_bytes for o in ops)),
        index_bytes=float(sum(o.index_bytes for o in ops)),
        executed_macs=executed, useful_macs=useful,
        utilization=executed / peak if peak else 0.0,
        effective_utilization=useful / peak if peak else 0.0,
        load_imbalance=max((o.load_imbalance for o in ops), default=1.0),
        buffer_accesses=buf, energy_pj=energy, resources=resources, fits=fits, ops=tuple(ops),
        structure=tuple(structure),
    )
