"""Published FPGA transformer accelerators side by side with the model configured like them.

For each design: the figures read in its paper (latency, power, clock, multipliers, DSPs), our
configuration as close as the model allows, our latency and energy on the same workload, the
ratios and where the difference comes from. Every figure of a design states where it was read;
a figure that could not be read in a source is marked "unverified" in the printed table.

  python benchmarks/published_designs.py            # markdown table + per-design notes
  python benchmarks/published_designs.py --json     # the same rows as JSON

Source read for FQ-BERT: Z. Liu, G. Li, J. Cheng, "Hardware Acceleration of Fully Quantized BERT
for Efficient Natural Language Processing", DATE 2021 (arXiv 2103.02800), full text: Table III
(resources, latency per configuration), Table IV (latency, power, fps/W), section IV-A (214 MHz,
batch 1, sequence length 128, Vivado HLS 2019.1), section III-B (a PE = one Bit-split
Inner-product Module of M 8x4-bit multipliers; N PEs per PU; Table III: 12 PUs).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hwmodels  # noqa: E402
from hwmodels.power import power_mw  # noqa: E402

FQ_BERT = "FQ-BERT (Liu et al., DATE 2021, arXiv 2103.02800)"
# FQ-BERT's weight GEMMs run 8-bit activations x 4-bit weights on 8x4 multipliers; its QK^T and
# AV (8x8) combine two 8x4 multipliers per MAC (section III-B). Ours run at w4a8 (4-bit weights:
# half the weight bytes of int8; 2 MACs per DSP48E2, hwmodels.resources.MACS_PER_DSP), and the
# attention matmuls (8-bit x 8-bit) at the full rate of our array.
PRECISION = "w4a8"
PRECISION_NOTE = ("w4a8 as theirs (4-bit weights, 8-bit activations); the paper's 8x8 "
                  "attention matmuls use two 8x4 multipliers per MAC, ours one")


@dataclass(frozen=True)
class Published:
    """One published design: what its paper reports (with where) and our configuration."""

    name: str
    source: str
    board: str  # our preset the configuration starts from
    overrides: dict = field(default_factory=dict)
    model: str = "bert-base"
    seq_len: int = 128
    clock_mhz: float = 0.0
    multipliers: int = 0  # MAC units working in parallel on weight GEMMs
    dsp: int = 0
    latency_ms: float = 0.0
    power_w: float = 0.0
    power_scope: str = ""
    unverified: tuple[str, ...] = ()  # figures not read in a source
    config_note: str = ""


def _fq_bert_zcu102(rows: int, cols: int, note: str) -> Published:
    return Published(
        name=f"FQ-BERT ZCU102, ours {rows}x{cols}", source=FQ_BERT + " Tables III, IV",
        board="zcu102", overrides={"clock_mhz": 214, "pe_array": {"rows": rows, "cols": cols,
                                                                   "precision": PRECISION}},
        clock_mhz=214, multipliers=12 * 8 * 16, dsp=1751, latency_ms=43.89, power_w=9.8,
        power_scope="'Power(W)' of the ZCU102 (Table IV); how it was measured is not stated",
        config_note=note)


DESIGNS = (
    _fq_bert_zcu102(16, 96, "(N, M) = (8, 16), 12 PUs: 16-long dot products x 96 outputs "
                    "= 1,536 multipliers; ours: 16 rows (K) x 96 columns (N), same MACs/cycle"),
    _fq_bert_zcu102(48, 72, "same DSP budget instead: 48x72 w4a8 = 3,456 MACs on 1,728 DSPs "
                    "(+32 vector) vs their 1,751 DSPs"),
    Published(
        name="FQ-BERT ZCU111, ours 16x192", source=FQ_BERT + " Tables III, IV", board="zcu102",
        overrides={"clock_mhz": 214, "pe_array": {"rows": 16, "cols": 192,
                                                  "precision": PRECISION},
                   # ZCU111 budget as Table III lists it (BRAM18K 2,160 = 1,080 BRAM36)
                   "board": {"part": "ZCU111 (part not named in the paper)", "dsp": 4272,
                             "bram36": 1080, "lut": 425280, "uram": 0}},
        clock_mhz=214, multipliers=12 * 16 * 16, dsp=3287, latency_ms=23.79, power_w=13.2,
        power_scope="'Power(W)' of the ZCU111 (Table IV); how it was measured is not stated",
        unverified=("DRAM bandwidth and static power: the zcu102 preset's (ZCU111 has its own "
                    "PS DDR4 and a larger RFSoC part)",),
        config_note="(N, M) = (16, 16): 3,072 multipliers; ours 16x192"),
)


def simulate_design(d: Published) -> dict:
    """Our figures for one design (analytical engine, dense, batch 1)."""
    acc = hwmodels.load_board(d.board, d.overrides, check_fit=False)
    wl = hwmodels.builtin_workload(d.model, seq_len=d.seq_len)
    rep = hwmodels.simulate(wl, acc)
    macs = sum(op.macs for op in wl.gemms)
    ideal_ms = macs / d.multipliers / (d.clock_mhz * 1e3)  # their multipliers, all busy
    cyc = rep.total_cycles
    # activation x activation matmuls (QK^T, AV: no weight name) at half rate, as FQ-BERT runs
    # its 8x8 products on two 8x4 multipliers: one more pass of their MACs on our array
    attn_macs = sum(op.macs for op in wl.gemms if not op.weight_name)
    attn_extra_ms = attn_macs / acc.pe_array.macs / (d.clock_mhz * 1e3)
    pw = power_mw(rep.energy_pj, rep.latency_ms)
    return {
        "design": d.name, "ours_ms": rep.latency_ms, "published_ms": d.latency_ms,
        "ratio": rep.latency_ms / d.latency_ms, "ideal_ms": ideal_ms,
        "attn_half_rate_ms": attn_extra_ms,
        "published_over_ideal": d.latency_ms / ideal_ms, "ours_over_ideal": rep.latency_ms / ideal_ms,
        "share": {k: getattr(rep, f"{k}_cycles") / cyc for k in
                  ("compute", "fill_drain", "stall", "index_overhead", "vector")},
        "dsp_ours": rep.resources["dsp"]["used"], "dsp_published": d.dsp,
        "fits": rep.fits, "ours_mj": rep.energy_mj, "ours_chip_w": pw["total"] / 1e3,
        "ours_static_w": pw["static"] / 1e3, "ours_dram_w": pw["dram"] / 1e3,
        "published_mj": d.power_w * d.latency_ms, "published_w": d.power_w,
        "unverified": list(d.unverified), "config": d.config_note, "source": d.source,
        "power_scope": d.power_scope, "overrides": d.overrides,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| design | published ms | ours ms | ours / published | ideal ms (their "
            "multipliers) | published / ideal | ours / ideal | our split: compute / fill-drain"
            " / stall / vector | published W (mJ) | ours W chip+DRAM (mJ) |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        s = r["share"]
        split = (f"{s['compute']:.0%} / {s['fill_drain']:.0%} / {s['stall']:.0%} / "
                 f"{s['vector']:.0%}")
        lines.append(
            f"| {r['design']} | {r['published_ms']:.2f} | {r['ours_ms']:.2f} | {r['ratio']:.2f} "
            f"| {r['ideal_ms']:.2f} | {r['published_over_ideal']:.2f} | "
            f"{r['ours_over_ideal']:.2f} | {split} | {r['published_w']:.1f} "
            f"({r['published_mj']:.0f}) | {r['ours_chip_w']:.2f} ({r['ours_mj']:.0f}) |")
    notes = [""]
    for r in rows:
        notes.append(f"* {r['design']}: {r['config']}; DSPs ours {r['dsp_ours']:,} vs "
                     f"{r['dsp_published']:,}; {PRECISION_NOTE} (at half rate they would add "
                     f"{r['attn_half_rate_ms']:.2f} ms: ours / published "
                     f"{(r['ours_ms'] + r['attn_half_rate_ms']) / r['published_ms']:.2f}). Power: {r['power_scope']}; ours is "
                     f"PL static {r['ours_static_w']:.2f} W + PL dynamic + DRAM access "
                     f"{r['ours_dram_w']:.2f} W, without the PS, DRAM background or the board. "
                     f"Source: {r['source']}."
                     + "".join(f" Unverified: {u}." for u in r["unverified"]))
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    rows = [simulate_design(d) for d in DESIGNS]
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
