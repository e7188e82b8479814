"""Speed of the hardware model: whole 12-layer BERT-base, seq 128, 16x16 masks at 50% density.

Per design point it times the analytical engine (target <= 20 ms per whole-model point) and the
event engine (target <= 5 s), both on one core, and prints a table. If the SCALE-Sim helper
(benchmarks/scalesim_ref.py) has its venv ready, it also times SCALE-Sim on the same dense GEMM
(128x768x768 on 32x32 ws, one BERT-base projection; a whole layer takes minutes there) and shows
our time for that GEMM beside it; otherwise it says why it is skipped.

Timings: wall-clock and CPU time (process_time; robust on a busy machine), best of --repeat.

    python benchmarks/bench_hwmodels.py [--repeat 7] [--event-repeat 1] [--no-scalesim]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the targets say
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwmodels  # noqa: E402

DESIGN_POINTS = [
    ("zcu102", {"sparse_strategy": "tile-skip"}),
    ("zcu102", {"sparse_strategy": "compact"}),
    ("zcu102", {"sparse_strategy": "tile-skip", "dataflow": "os"}),
    ("zcu102", {"sparse_strategy": "dense"}),
    ("ultra96v2", {"sparse_strategy": "compact"}),
]


def _best(fn, repeat):
    walls, cpus = [], []
    out = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, min(walls), min(cpus)


def _label(board, over):
    bits = [board] + [f"{k}={v}" for k, v in over.items()]
    return " ".join(bits)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="analytical repeats (best of)")
    ap.add_argument("--event-repeat", type=int, default=1, help="event engine repeats")
    ap.add_argument("--no-scalesim", action="store_true", help="skip SCALE-Sim")
    args = ap.parse_args(argv)

    wl = hwmodels.builtin_workload("bert-base", 128)
    masks = {op.weight_name: hwmodels.BlockMask.random((16, 16), (op.n, op.k), 0.5, seed=i)
             for i, op in enumerate(wl.gemms) if op.weight_name}
    print(f"workload: BERT-base, 12 layers, seq 128, batch 1, {len(wl.ops)} ops; "
          f"16x16 masks at 50% density on all {len(masks)} weight matrices")
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    hdr = (f"{'design point':<44}{'latency ms':>11}{'an. wall ms':>12}{'an. cpu ms':>11}"
           f"{'ev. wall s':>11}{'ev. cpu s':>10}{'ev/an diff':>11}")
    print(hdr)
    print("-" * len(hdr))
    worst = 0.0
    for board, over in DESIGN_POINTS:
        acc = hwmodels.load_board(board, over)
        hwmodels.simulate(wl, acc, masks)  # warm imports/caches
        rep, aw, ac = _best(lambda: hwmodels.simulate(wl, acc, masks), args.repeat)
        ev, ew, ec = _best(lambda: hwmodels.simulate(wl, acc, masks, engine="event"),
                           args.event_repeat)
        diff = (rep.total_cycles - ev.total_cycles) / ev.total_cycles
        worst = max(worst, abs(diff))
        print(f"{_label(board, over):<44}{rep.latency_ms:>11.2f}{aw * 1e3:>12.1f}{ac * 1e3:>11.1f}"
              f"{ew:>11.2f}{ec:>10.2f}{100 * diff:>10.2f}%")
    print(f"targets: analytical <= 20 ms, event <= 5 s per whole-model point; "
          f"worst engine difference {100 * worst:.2f}%")

    # SCALE-Sim on one dense BERT-base projection
    m, k, n = 128, 768, 768
    acc = hwmodels.load_board("zcu102", {"sparse_strategy": "dense"})
    gemm = hwmodels.gemm_workload(m, k, n)
    rg, gw, gc = _best(lambda: hwmodels.simulate(gemm, acc), args.repeat)
    eg, egw, egc = _best(lambda: hwmodels.simulate(gemm, acc, engine="event"), 3)
    print(f"\nsame dense GEMM {m}x{k}x{n} on 32x32 ws: analytical {gw * 1e3:.2f} ms wall "
          f"({gc * 1e3:.2f} ms CPU), event {egw * 1e3:.1f} ms wall ({egc * 1e3:.1f} ms CPU); "
          f"ideal-memory cycles {rg.compute_cycles + rg.fill_drain_cycles:,.0f}")
    if args.no_scalesim:
        print("SCALE-Sim: skipped (--no-scalesim)")
        return 0
    try:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import scalesim_ref  # the validation developer's helper
    except ImportError:
        print("SCALE-Sim: skipped (benchmarks/scalesim_ref.py not found)")
        return 0
    if not scalesim_ref.scalesim_available():
        print(f"SCALE-Sim: skipped (no ready venv at {scalesim_ref.venv_dir()}; "
              "create it with `python benchmarks/scalesim_ref.py --ensure-venv`)")
        return 0
    try:
        res = scalesim_ref.run_scalesim(m, k, n, 32, 32, "ws")
    except Exception as err:  # noqa: BLE001 - a benchmark reports, never crashes on the reference
        print(f"SCALE-Sim: skipped ({str(err).splitlines()[0]})")
        return 0
    sim_s = res.get("sim_s", res.get("wall_s"))
    sim_cpu = res.get("sim_cpu_s") or sim_s
    print(f"SCALE-Sim 3.0.0: {res['compute_cycles']:,} compute cycles, simulation {sim_s:.2f} s "
          f"wall, {sim_cpu:.2f} s CPU (wall incl. interpreter {res['wall_s']:.2f} s)")
    print(f"  CPU-time ratio for the same GEMM: SCALE-Sim / analytical = {sim_cpu / gc:,.0f}x, "
          f"SCALE-Sim / event = {sim_cpu / egc:,.0f}x")
    # a whole model in SCALE-Sim, extrapolated from its time per cycle (an estimate)
    dense = hwmodels.simulate(wl, acc)
    per_cycle = sim_cpu / res["compute_cycles"]
    gemm_cycles = dense.compute_cycles + dense.fill_drain_cycles
    print(f"  whole dense BERT-base would take SCALE-Sim about {per_cycle * gemm_cycles / 60:.0f} "
          f"min (estimate: {per_cycle * 1e6:.0f} us/cycle x {gemm_cycles:,.0f} GEMM cycles)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
