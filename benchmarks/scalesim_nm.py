"""SCALE-Sim 3.0.0's N:M sparse mode on small GEMMs (gold of tests/hwmodels/test_index_formats.py).

SCALE-Sim's sparse mode (``SparsitySupport : true``, ``SparseRep : ellpack_block``,
``OptimizedMapping : false``, a ``N:M`` column in the GEMM topology) keeps the first N of every
aligned group of M filter rows (K), condenses K to K' = ceil(K/M) * N and runs the dense
dataflow on it; it charges metadata as storage only: K' * N_filters * ceil(log2 M) bits, reported
in 32-bit words (SPARSE_REPORT.csv, "Filter Metadata Storage"). Ideal memory (CALC mode), as in
benchmarks/scalesim_ref.py, whose venv and worker this script reuses.

  python benchmarks/scalesim_nm.py      # prints one line per case: compute cycles, metadata words
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scalesim_ref as ref  # noqa: E402

#: (M, K, N, R, C, dataflow, "N:M")
CASES = [(16, 32, 16, 8, 8, "ws", "2:4"), (16, 32, 16, 8, 8, "os", "2:4"),
         (20, 64, 24, 8, 8, "ws", "2:4"), (20, 64, 24, 8, 8, "os", "2:4"),
         (33, 64, 31, 16, 8, "ws", "1:4"), (33, 64, 31, 16, 8, "os", "1:4"),
         (12, 48, 20, 4, 8, "ws", "2:8"), (12, 48, 20, 4, 8, "os", "2:8")]


def run_nm(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, ratio: str) -> dict:
    """One SCALE-Sim run in sparse mode: {"compute_cycles", "metadata_words"}."""
    with tempfile.TemporaryDirectory(prefix="scalesim-nm-") as tmp:
        folder = Path(tmp)
        cfg, topo, layout = ref.write_inputs(folder, m, k, n, rows, cols, dataflow)
        cfg.write_text(cfg.read_text().replace("SparsitySupport : false",
                                               "SparsitySupport : true"))
        topo.write_text(f"Layer, M, N, K, Sparsity,\ngemm, {m}, {n}, {k}, {ratio},\n")
        out = folder / "out"
        proc = subprocess.run([str(ref.venv_python()), "-c", ref._WORKER, str(cfg), str(topo),
                               str(layout), str(out)], capture_output=True, text=True, cwd=tmp,
                              timeout=600)
        run = out / "codesign_ref"
        if proc.returncode != 0 or not (run / "SPARSE_REPORT.csv").exists():
            raise RuntimeError(f"SCALE-Sim failed on {m}x{k}x{n} {ratio}: {proc.stderr[-300:]}")
        compute = ref._read_compute_report(run / "COMPUTE_REPORT.csv")["compute_cycles"]
        row = (run / "SPARSE_REPORT.csv").read_text().strip().splitlines()[1].split(",")
        return {"compute_cycles": compute, "metadata_words": float(row[4])}


def main() -> int:
    if not ref.scalesim_available():
        print(f"no SCALE-Sim venv at {ref.venv_dir()}: run python benchmarks/scalesim_ref.py "
              "--ensure-venv", file=sys.stderr)
        return 1
    for case in CASES:
        print(case, run_nm(*case))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
