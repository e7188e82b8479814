"""SCALE-Sim 3.0.0 as an independent, cycle-accurate reference for dense GEMMs.

SCALE-Sim (PyPI ``scalesim``, Georgia Tech / scalesim-project) simulates a systolic array
cycle by cycle: it builds per-cycle demand matrices for the IFMAP, filter and OFMAP SRAMs and
replays them through a double-buffered memory model. We never import it: it needs numpy < 2 and
brings pandas/numba/matplotlib, so it lives in its own virtual environment (created on demand,
default ``~/.cache/codesign/scalesim-venv``, override with ``CODESIGN_SCALESIM_VENV``) and is
called through a subprocess. It is *not* a dependency of the ``codesign`` package.

What is modelled: one dense GEMM Y[M,N] = X[M,K] @ W[K,N] on an R x C array with the ws, os or
is dataflow, in SCALE-Sim's GEMM topology mode (row ``name, M, N, K,``; internally IFMAP = M x K
with a 1 x K filter, N filters, so the ofmap is M x N and the MAC count is M*K*N).
"Ideal memory" = SCALE-Sim's CALC (estimate-bandwidth) mode, whose read buffers are stall free by
construction, plus SRAMs big enough for every operand so the OFMAP write buffer never stalls.
What is ignored: sparsity (SCALE-Sim's N:M support is off), custom layouts (a header-only layout
CSV is passed because SCALE-Sim insists on the file), DRAM timing (no Ramulator trace).

Results are read from SCALE-Sim's own COMPUTE_REPORT.csv:
``compute_cycles`` = its "Total Cycles" column (cycles of the compute pipeline incl. stalls),
``total_cycles`` = "Total Cycles (incl. prefetch)" (adds SCALE-Sim's estimate of the first DRAM
prefetch at 10 words/cycle, *not* ideal memory), ``stall_cycles`` = "Stall Cycles".

Closed forms that reproduce SCALE-Sim's compute cycles exactly (derived from its source, checked
against runs; see ``closed_form_compute_cycles``):
  ws: folds = ceil(K/R) * ceil(N/C), per fold 2R + C + M - 2  (R cycles weight load, M rows
      streamed, R-1 input skew, C-1 output drain)
  os: folds = ceil(M/R) * ceil(N/C), per fold K + R + C - 2   (K-long reduction + R-1 + C-1 skew)
  is: folds = ceil(K/R) * ceil(M/C), per fold 2R + C + N - 2  (ws with the roles of M and N swapped)
  compute_cycles = folds * per_fold - 1   (SCALE-Sim reports the index of the last cycle)
Edge folds are charged at the full array size: SCALE-Sim pads partial folds with null requests.

Usage as a script (the venv is created if missing):
  python benchmarks/scalesim_ref.py --m 128 --k 768 --n 768 --array 32x32 --dataflow ws
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

SCALESIM_VERSION = "3.0.0"
# numpy 2 breaks scalesim 3.0.0 in memory/double_buffered_scratchpad_mem.py
# ("only 0-dimensional arrays can be converted to Python scalars").
VENV_REQUIREMENTS = (f"scalesim=={SCALESIM_VERSION}", "numpy<2")
DATAFLOWS = ("ws", "os", "is")

# Runs inside the venv: only SCALE-Sim's public entry point, traces off (they cost seconds and
# hundreds of MB for a BERT layer), timing of the simulation alone.
_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
from scalesim.scale_sim import scalesim
t1 = time.perf_counter()
c1 = time.process_time()
cfg, topo, layout, out = sys.argv[1:5]
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
             input_type_gemm=True)
s.run_scale(top_path=out)
t2 = time.perf_counter()
c2 = time.process_time()
print("SCALESIM_WORKER_JSON " + json.dumps({"import_s": t1 - t0, "sim_s": t2 - t1,
                                            "sim_cpu_s": c2 - c1}))
"""


class ScaleSimUnavailable(RuntimeError):
    """SCALE-Sim's virtual environment is missing and could not be created."""


def venv_dir() -> Path:
    """The SCALE-Sim venv folder: $CODESIGN_SCALESIM_VENV or ~/.cache/codesign/scalesim-venv."""
    env = os.environ.get("CODESIGN_SCALESIM_VENV")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "codesign" / "scalesim-venv"


def venv_python(venv: Path | None = None) -> Path:
    venv = venv_dir() if venv is None else Path(venv)
    return venv / "bin" / "python"


@lru_cache(maxsize=8)
def _probe(python: str) -> bool:
    if not Path(python).exists():
        return False
    code = (
        "import numpy, scalesim.scale_sim, importlib.metadata as m; "
        f"assert int(numpy.__version__.split('.')[0]) < 2; "
        f"assert m.version('scalesim') == '{SCALESIM_VERSION}'"
    )
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def scalesim_available(venv: Path | None = None) -> bool:
    """True when the venv exists and imports scalesim 3.0.0 with numpy < 2 (never installs)."""
    return _probe(str(venv_python(venv)))


def ensure_venv(venv: Path | None = None, timeout_s: float = 900.0) -> Path:
    """Create the SCALE-Sim venv if needed (python -m venv + pip install); return its python.

    Raises ScaleSimUnavailable with one line when pip cannot install it (e.g. no index reachable).
    """
    venv = venv_dir() if venv is None else Path(venv)
    python = venv_python(venv)
    if scalesim_available(venv):
        return python
    t0 = time.monotonic()
    try:
        if not python.exists():
            venv.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, timeout=timeout_s)
        left = max(1.0, timeout_s - (time.monotonic() - t0))
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_REQUIREMENTS],
                              capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        raise ScaleSimUnavailable(
            f"pip install {' '.join(VENV_REQUIREMENTS)} into {venv} took over {timeout_s:.0f} s; "
            "check that PyPI is reachable or set CODESIGN_SCALESIM_VENV to a ready venv") from None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ScaleSimUnavailable(f"could not create the venv {venv}: {exc}; "
                                  "set CODESIGN_SCALESIM_VENV to a ready venv") from None
    _probe.cache_clear()
    if proc.returncode != 0 or not scalesim_available(venv):
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ScaleSimUnavailable(
            f"pip install {' '.join(VENV_REQUIREMENTS)} into {venv} failed: {last}")
    return python


def parse_array(text: str) -> tuple[int, int]:
    """'32x32' -> (32, 32) (rows x cols)."""
    try:
        rows, cols = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"array {text!r}: write it as ROWSxCOLS, e.g. 32x32") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"array {text!r}: rows and cols must be >= 1")
    return rows, cols


def closed_form_compute_cycles(m: int, k: int, n: int, rows: int, cols: int,
                               dataflow: str = "ws") -> int:
    """SCALE-Sim 3.0.0's compute cycles ("Total Cycles", no stalls) for a dense GEMM, exactly.

    Derived from scalesim/compute/systolic_compute_{ws,os,is}.py: every fold's demand matrix has
    the same number of rows (edge folds padded with null requests), and the memory model reports
    the index of the last OFMAP write, i.e. rows - 1.
    """
    r, c = rows, cols
    if dataflow == "ws":
        folds = math.ceil(k / r) * math.ceil(n / c)
        per_fold = 2 * r + c + m - 2
    elif dataflow == "os":
        folds = math.ceil(m / r) * math.ceil(n / c)
        per_fold = k + r + c - 2
    elif dataflow == "is":
        folds = math.ceil(k / r) * math.ceil(m / c)
        per_fold = 2 * r + c + n - 2
    else:
        raise ValueError(f"dataflow {dataflow!r}: use one of {', '.join(DATAFLOWS)}")
    return folds * per_fold - 1


def _config_text(rows: int, cols: int, dataflow: str, ideal_memory: bool,
                 m: int, k: int, n: int, sram_kb: tuple[int, int, int],
                 bandwidth_words: int) -> str:
    # Address spaces must not overlap: SCALE-Sim tells operands apart by address offsets.
    filter_offset = 10_000_000 * max(1, math.ceil(m * k / 10_000_000) + 1)
    ofmap_offset = filter_offset + 10_000_000 * max(1, math.ceil(k * n / 10_000_000) + 1)
    if ideal_memory:
        # SRAMs that hold every operand whole (1-byte words): no OFMAP drain stalls; CALC mode
        # makes the read buffers stall free by construction.
        ifmap_kb = max(64, math.ceil(m * k / 1024) * 2)
        filter_kb = max(64, math.ceil(k * n / 1024) * 2)
        ofmap_kb = max(64, math.ceil(m * n / 1024) * 2)
        mode = "CALC"
    else:
        ifmap_kb, filter_kb, ofmap_kb = sram_kb
        mode = "USER"
    return f"""[general]
run_name = codesign_ref

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : {ifmap_kb}
FilterSramSzkB : {filter_kb}
OfmapSramSzkB : {ofmap_kb}
IfmapOffset : 0
FilterOffset : {filter_offset}
OfmapOffset : {ofmap_offset}
Bandwidth : {bandwidth_words}
Dataflow : {dataflow}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : {bandwidth_words}
IfmapSRAMBankNum : 1
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : {bandwidth_words}
FilterSRAMBankNum : 1
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : {mode}
UseRamulatorTrace : False
"""


def write_inputs(folder: Path, m: int, k: int, n: int, rows: int, cols: int,
                 dataflow: str = "ws", ideal_memory: bool = True,
                 sram_kb: tuple[int, int, int] = (256, 256, 128),
                 bandwidth_words: int = 10) -> tuple[Path, Path, Path]:
    """Write SCALE-Sim's config, GEMM topology and (header-only) layout files into ``folder``."""
    folder = Path(folder)
    cfg = folder / "scale.cfg"
    topo = folder / "gemm.csv"
    layout = folder / "layout.csv"
    cfg.write_text(_config_text(rows, cols, dataflow, ideal_memory, m, k, n, sram_kb,
                                bandwidth_words))
    # GEMM mode reads "name, M, N, K," (the trailing comma matters: SCALE-Sim drops the last
    # field of every row). It becomes IFMAP M x K, filter 1 x K, N filters: Y[M,N] = X[M,K] W[K,N].
    topo.write_text("Layer, M, N, K,\n" f"gemm, {m}, {n}, {k},\n")
    # SCALE-Sim opens the layout file even with custom layouts off; a header line is enough.
    layout.write_text("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor,\n")
    return cfg, topo, layout


def _read_compute_report(path: Path) -> dict:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise RuntimeError(f"{path}: SCALE-Sim wrote no layer row")
    values = [v.strip() for v in lines[1].split(",") if v.strip()]
    # LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %,
    # Mapping Efficiency %, Compute Util %
    return {
        "total_cycles": int(float(values[1])),
        "compute_cycles": int(float(values[2])),
        "stall_cycles": int(float(values[3])),
        "overall_util_pct": float(values[4]),
        "mapping_eff_pct": float(values[5]),
        "compute_util_pct": float(values[6]),
    }


def run_scalesim(m: int, k: int, n: int, rows: int, cols: int, dataflow: str = "ws",
                 ideal_memory: bool = True, *, venv: Path | None = None,
                 timeout_s: float | None = 1800.0,
                 sram_kb: tuple[int, int, int] = (256, 256, 128),
                 bandwidth_words: int = 10) -> dict:
    """Run SCALE-Sim on Y[M,N] = X[M,K] @ W[K,N] in a temp folder; return its cycle counts.

    Returns dict(compute_cycles, total_cycles, stall_cycles, wall_s, sim_s, sim_cpu_s, ...):
    wall_s is the whole subprocess (interpreter start + imports + simulation), sim_s the
    simulation alone, sim_cpu_s its CPU time (robust to a busy machine; SCALE-Sim is one thread).
    ``ideal_memory=False`` uses USER bandwidth mode with ``sram_kb`` and ``bandwidth_words``.
    Requires the venv (call ``ensure_venv`` first); raises ScaleSimUnavailable otherwise.
    """
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow {dataflow!r}: use one of {', '.join(DATAFLOWS)}")
    for name, v in (("m", m), ("k", k), ("n", n), ("rows", rows), ("cols", cols)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive integer")
    python = venv_python(venv)
    if not scalesim_available(venv):
        raise ScaleSimUnavailable(
            f"no SCALE-Sim venv at {python.parent.parent}; run "
            "`python benchmarks/scalesim_ref.py --ensure-venv` (needs PyPI)")
    with tempfile.TemporaryDirectory(prefix="scalesim-") as tmp:
        tmp_path = Path(tmp)
        cfg, topo, layout = write_inputs(tmp_path, m, k, n, rows, cols, dataflow, ideal_memory,
                                         sram_kb, bandwidth_words)
        out = tmp_path / "out"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(python), "-c", _WORKER, str(cfg), str(topo), str(layout), str(out)],
            capture_output=True, text=True, timeout=timeout_s, cwd=tmp,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall_s = time.perf_counter() - t0
        report = out / "codesign_ref" / "COMPUTE_REPORT.csv"
        if proc.returncode != 0 or not report.exists():
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise RuntimeError(f"SCALE-Sim failed on M={m} K={k} N={n} {rows}x{cols} "
                               f"{dataflow}: {' | '.join(tail)}")
        result = _read_compute_report(report)
    timing = {}
    for line in proc.stdout.splitlines():
        if line.startswith("SCALESIM_WORKER_JSON "):
            timing = json.loads(line.split(" ", 1)[1])
    result.update(
        m=m, k=k, n=n, rows=rows, cols=cols, dataflow=dataflow, ideal_memory=ideal_memory,
        wall_s=round(wall_s, 3), sim_s=round(timing.get("sim_s", float("nan")), 3),
        sim_cpu_s=round(timing.get("sim_cpu_s", float("nan")), 3),
        scalesim_version=SCALESIM_VERSION)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, default=128)
    parser.add_argument("--k", type=int, default=768)
    parser.add_argument("--n", type=int, default=768)
    parser.add_argument("--array", default="32x32", help="ROWSxCOLS")
    parser.add_argument("--dataflow", choices=DATAFLOWS, default="ws")
    parser.add_argument("--real-memory", action="store_true",
                        help="USER bandwidth mode (10 words/cycle, 256/256/128 kB SRAMs)")
    parser.add_argument("--ensure-venv", action="store_true",
                        help="only create the venv (if missing) and exit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        python = ensure_venv()
    except ScaleSimUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.ensure_venv:
        print(python)
        return 0
    rows, cols = parse_array(args.array)
    res = run_scalesim(args.m, args.k, args.n, rows, cols, args.dataflow,
                       ideal_memory=not args.real_memory)
    res["closed_form_compute_cycles"] = closed_form_compute_cycles(
        args.m, args.k, args.n, rows, cols, args.dataflow)
    if args.json:
        print(json.dumps(res))
    else:
        for key, val in res.items():
            print(f"{key:28s} {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
