"""Speed of hwmodels: design points per second in sweeps, and per-point figures on BERT-base.

Sweep table (printed first, `--sweeps`): whole-model MiniLM-L6 design points per second on one
core (seq 128, a random 16x16 block mask at 50 % density on every weight matrix, compact, ws, the
zcu102 preset), for three sweeps: clock x DRAM bandwidth x weight/input buffer sizes at a fixed
32x32 array; the same with the array shape varied too; and every point a new array shape. Per
sweep, four ways of running it:
  * plain      hwmodels.simulate per point with the caches off (hwmodels.sweepcache), the
               path before the caches existed;
  * cached     hwmodels.simulate per point with the caches on, starting empty;
  * batch      hwmodels.simulate_points on the whole list, caches starting empty;
  * batch warm the same again (fold structures and schedules already cached, as in a re-run).
Every batch result is checked equal to the plain one (exact equality of the Report totals).

BERT-base table: per design point (array size x dataflow x sparse strategy on the zcu102
preset) it times
  * the analytical engine on the whole 12-layer BERT-base encoder at sequence length 128 with a
    random 16x16 block mask at 50 % density on every weight matrix (median of --repeat runs),
    cold (caches off: what a new point costs) and warm (the same point again, caches on),
  * the event engine (simpy) on the same (one run),
and prints both, the agreement of their total cycles, and the ratio against SCALE-Sim's time for
the same work. SCALE-Sim only simulates dense GEMMs, one at a time: its time for "the same work"
is one dense encoder layer (Q, K, V, attention-output, FFN-in, FFN-out GEMMs + 12 heads x (QK^T,
AV)) on the same array and dataflow, times 12 layers (the layers are identical, so we run one and
multiply; say so when quoting). Vector ops (softmax, LayerNorm, GELU) have no SCALE-Sim
counterpart and are left out of its side. SCALE-Sim's per-GEMM figures come from the cache that
benchmarks/validate_scalesim.py fills (missing shapes are run, which takes minutes).

Times: wall (perf_counter) and CPU (process_time). On a busy machine wall time is inflated; the
CPU time of a single-threaded process is what "one core" means. numpy is held to one thread.

  python benchmarks/bench_speed.py                  # sweeps + 3 arrays x ws/os x strategies
  python benchmarks/bench_speed.py --quick          # sweeps + 32x32 only, no event engine
  python benchmarks/bench_speed.py --sweeps-only    # the sweep table alone
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as the issue's targets say

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import scalesim_ref  # noqa: E402
import validate_scalesim as vs  # noqa: E402

ANALYTICAL_TARGET_MS = 20.0
EVENT_TARGET_S = 5.0


def layer_gemms(seq: int = 128, hidden: int = 768, inter: int = 3072, heads: int = 12):
    """(label, M, K, N, count) of one BERT encoder layer's GEMMs."""
    d = hidden // heads
    return [("qkvo", seq, hidden, hidden, 4), ("ffn_in", seq, hidden, inter, 1),
            ("ffn_out", seq, inter, hidden, 1), ("qk^T", seq, d, seq, heads),
            ("av", seq, seq, d, heads)]


def scalesim_layer(rows: int, cols: int, dataflow: str, jobs: int) -> dict:
    """SCALE-Sim's wall/CPU seconds and cycles for one dense BERT-base layer (cached runs)."""
    cases = [vs.Case(f"speed {lab}", m, k, n, rows, cols, dataflow)
             for lab, m, k, n, _ in layer_gemms()]
    res = vs.scalesim_results(cases, jobs, progress=lambda s: print(s, file=sys.stderr))
    counts = [c for *_, c in layer_gemms()]
    wall = sum(res[c.key]["sim_s"] * n for c, n in zip(cases, counts))
    cpu_known = all(res[c.key].get("sim_cpu_s") == res[c.key].get("sim_cpu_s")  # not NaN
                    and "sim_cpu_s" in res[c.key] for c in cases)
    cpu = (sum(res[c.key]["sim_cpu_s"] * n for c, n in zip(cases, counts))
           if cpu_known else float("nan"))
    cycles = sum(res[c.key]["compute_cycles"] * n for c, n in zip(cases, counts))
    return {"wall_s": wall, "cpu_s": cpu, "cycles": cycles}


def timed(fn, repeat: int) -> tuple[float, float, object]:
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


SWEEP_TARGETS = {"fixed array": 1000.0, "array varied": 100.0, "new array each": 100.0}
SWEEP_ARRAYS = ((16, 16), (16, 32), (32, 16), (32, 32), (32, 64), (64, 32), (64, 64))


def sweep_points(hwmodels, kind: str) -> list:
    """The accelerators of one sweep (see the module docstring)."""
    import itertools

    def acc(rows, cols, clock, bw, wbuf, xbuf):
        return hwmodels.load_board("zcu102", {
            "pe_array": {"rows": rows, "cols": cols}, "dataflow": "ws",
            "sparse_strategy": "compact", "clock_mhz": clock, "dram": {"bandwidth_gb_s": bw},
            "buffers": {"weight": {"capacity_bytes": wbuf}, "input": {"capacity_bytes": xbuf}}},
            check_fit=False)

    clocks, bws = (150, 200, 250, 300), (4.0, 8.0, 12.0, 19.2)
    bufs = tuple(itertools.product((256 << 10, 1 << 20, 4 << 20), (128 << 10, 512 << 10, 2 << 20)))
    if kind == "fixed array":  # 4 x 4 x 9 = 144
        return [acc(32, 32, c, b, w, x) for c, b, (w, x) in itertools.product(clocks, bws, bufs)]
    if kind == "array varied":  # 7 x 4 x 4 x 2 = 224
        return [acc(r, c, k, b, w, x) for (r, c), k, b, (w, x)
                in itertools.product(SWEEP_ARRAYS, clocks, bws, bufs[::8])]
    # every point its own array shape: 24 shapes, clock and bandwidth drawn along
    shapes = [(r, c) for r in (8, 12, 16, 24, 32, 48) for c in (16, 24, 32, 64)]
    return [acc(r, c, clocks[i % 4], bws[i // 4 % 4], *bufs[4]) for i, (r, c) in enumerate(shapes)]


def sweep_table(hwmodels) -> None:
    """Print the sweep table (see the module docstring); raise if batch != plain anywhere."""
    from dataclasses import replace

    from hwmodels import sweepcache
    from hwmodels import simulate_points

    wl = hwmodels.builtin_workload("minilm-l6", 128)
    masks = {op.weight_name: hwmodels.BlockMask.random((16, 16), (op.n, op.k), 0.5, seed=i)
             for i, op in enumerate(wl.gemms) if op.weight_name}
    print(f"MiniLM-L6, seq 128, 16x16 blocks at 50 % density, ws compact (zcu102 preset); "
          f"load average at start {os.getloadavg()[0]:.2f}")
    head = (f"{'sweep':>15s} {'points':>6s} {'plain pt/s':>10s} {'cached pt/s':>11s} "
            f"{'batch pt/s':>10s} {'warm pt/s':>9s} {'target':>6s}")
    print(head)
    print("-" * len(head))
    for kind, target in SWEEP_TARGETS.items():
        accs = sweep_points(hwmodels, kind)
        rates = []
        with sweepcache.enabled(False):
            w0 = time.process_time()
            plain = [replace(hwmodels.simulate(wl, a, masks), ops=()) for a in accs]
            rates.append(len(accs) / (time.process_time() - w0))
        sweepcache.clear_all()
        w0 = time.process_time()
        for a in accs:
            hwmodels.simulate(wl, a, masks)
        rates.append(len(accs) / (time.process_time() - w0))
        for warm in (False, True):
            if not warm:
                sweepcache.clear_all()
            w0 = time.process_time()
            batch = simulate_points(wl, accs, masks)
            rates.append(len(accs) / (time.process_time() - w0))
            if batch != plain:
                raise SystemExit(f"sweep {kind!r}: simulate_points differs from simulate")
        print(f"{kind:>15s} {len(accs):6d} {rates[0]:10.0f} {rates[1]:11.0f} {rates[2]:10.0f} "
              f"{rates[3]:9.0f} {target:6.0f}", flush=True)
    print(f"(points/s = points / CPU seconds of this process, numpy on one thread; load average "
          f"at end {os.getloadavg()[0]:.2f})")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arrays", default="16x16,32x32,64x64")
    p.add_argument("--dataflows", default="ws,os")
    p.add_argument("--strategies", default="tile-skip,compact")
    p.add_argument("--repeat", type=int, default=5, help="analytical runs per point (median)")
    p.add_argument("--no-event", action="store_true")
    p.add_argument("--scalesim-array", default="32x32",
                   help="array for SCALE-Sim's reference layer ('none' to skip)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sweeps-only", action="store_true", help="print the sweep table alone")
    p.add_argument("--no-sweeps", action="store_true", help="skip the sweep table")
    args = p.parse_args(argv)
    if args.quick:
        args.arrays, args.no_event, args.repeat = "32x32", True, 3

    import hwmodels  # after the thread settings above
    from hwmodels import sweepcache

    if not args.no_sweeps:
        sweep_table(hwmodels)
    if args.sweeps_only:
        return 0

    wl = hwmodels.builtin_workload("bert-base", 128)
    masks = {op.weight_name: hwmodels.BlockMask.random((16, 16), (op.n, op.k), 0.5, seed=i)
             for i, op in enumerate(wl.gemms) if op.weight_name}

    ss = {}
    if args.scalesim_array != "none":
        r, c = scalesim_ref.parse_array(args.scalesim_array)
        for df in args.dataflows.split(","):
            try:
                one = scalesim_layer(r, c, df, args.jobs)
            except scalesim_ref.ScaleSimUnavailable as exc:
                print(f"note: no SCALE-Sim reference: {exc}", file=sys.stderr)
                break
            ss[(r, c, df)] = {k: v * 12 for k, v in one.items()}  # 12 identical layers

    head = (f"{'array':>6s} {'df':>3s} {'strategy':>9s} {'anal. ms':>9s} {'cpu ms':>7s} "
            f"{'warm ms':>7s} "
            f"{'event s':>8s} {'cpu s':>6s} {'cycles (anal.)':>15s} {'ev-an %':>7s} "
            f"{'SS cpu s':>9s} {'SS/anal.':>9s} {'SS/event':>9s}")
    print("BERT-base, 12 layers, seq 128, 16x16 blocks at 50 % density (zcu102 preset)")
    print(head)
    print("-" * len(head))
    worst_an = worst_ev = 0.0
    for arr in args.arrays.split(","):
        rows, cols = scalesim_ref.parse_array(arr)
        for df in args.dataflows.split(","):
            for strat in args.strategies.split(","):
                acc = hwmodels.load_board("zcu102", {"pe_array": {"rows": rows, "cols": cols},
                                                     "dataflow": df, "sparse_strategy": strat},
                                          check_fit=False)
                hwmodels.simulate(wl, acc, masks, engine="analytical")  # warm-up (imports)
                with sweepcache.enabled(False):  # cold: what a new design point costs
                    an_w, an_c, rep = timed(
                        lambda: hwmodels.simulate(wl, acc, masks, engine="analytical"),
                        args.repeat)
                _, warm_c, _ = timed(  # the same point again, its schedules cached
                    lambda: hwmodels.simulate(wl, acc, masks, engine="analytical"), args.repeat)
                worst_an = max(worst_an, an_c)
                ev_txt = cpu_txt = diff_txt = f"{'-':>8s}"
                ev_c = float("nan")
                if not args.no_event:
                    ev_w, ev_c, ev = timed(
                        lambda: hwmodels.simulate(wl, acc, masks, engine="event"), 1)
                    worst_ev = max(worst_ev, ev_c)
                    ev_txt, cpu_txt = f"{ev_w:8.2f}", f"{ev_c:6.2f}"
                    diff = 100 * (ev.total_cycles - rep.total_cycles) / rep.total_cycles
                    diff_txt = f"{diff:+7.2f}"
                ref = ss.get((rows, cols, df))
                if ref:
                    ref_cpu = ref["cpu_s"] if ref["cpu_s"] == ref["cpu_s"] else ref["wall_s"]
                    ss_txt = f"{ref_cpu:9.1f}"
                    r_an = f"{ref_cpu / an_c:9.0f}"
                    r_ev = f"{ref_cpu / ev_c:9.1f}" if ev_c == ev_c else f"{'-':>9s}"
                else:
                    ss_txt = r_an = r_ev = f"{'-':>9s}"
                print(f"{arr:>6s} {df:>3s} {strat:>9s} {an_w * 1e3:9.1f} {an_c * 1e3:7.1f} "
                      f"{warm_c * 1e3:7.1f} "
                      f"{ev_txt} {cpu_txt} {rep.total_cycles:15,.0f} {diff_txt} "
                      f"{ss_txt} {r_an} {r_ev}", flush=True)
    print()
    for (r, c, df), ref in ss.items():
        cpu = f"{ref['cpu_s']:.1f} s CPU" if ref["cpu_s"] == ref["cpu_s"] else "CPU n/a"
        print(f"SCALE-Sim {r}x{c} {df}, dense, 12 x one layer: {ref['cycles']:,} cycles, "
              f"{ref['wall_s']:.1f} s wall, {cpu}")
    print(f"targets (one core): analytical <= {ANALYTICAL_TARGET_MS:.0f} ms per point "
          f"(worst {worst_an * 1e3:.1f} ms CPU), event <= {EVENT_TARGET_S:.0f} s "
          f"(worst {worst_ev:.2f} s CPU)" if not args.no_event else
          f"target (one core): analytical <= {ANALYTICAL_TARGET_MS:.0f} ms per point "
          f"(worst {worst_an * 1e3:.1f} ms CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
