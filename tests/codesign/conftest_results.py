"""A synthetic results folder with the contract's points.csv columns (no simulation, no model).

Used by the plot/report/notebook tests until they are pointed at a real small study. The figures
follow simple, stated rules so tests can compute what the front must be without trusting the
code under test: latency = dense latency / compression / (a block-shape efficiency), and accuracy
falls with compression, faster for coarse block shapes (the tables below).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SHAPES = ("1x16", "4x4", "16x16", "32x32")
RATIOS = (0.5, 0.8)
ARRAYS = ("16x16", "32x32")
STRATEGIES = ("tile-skip", "compact")

# How much of the ideal speedup each block shape gets (coarse blocks skip whole tiles).
_EFFICIENCY = {"1x16": 0.35, "4x4": 0.5, "16x16": 0.8, "32x32": 0.9}
# Accuracy lost per unit of prune ratio (coarse blocks hurt more).
_ACC_SLOPE = {"1x16": 0.004, "4x4": 0.008, "16x16": 0.03, "32x32": 0.06}


def make_points(*, shapes=SHAPES, ratios=RATIOS, arrays=ARRAYS, strategies=STRATEGIES,
                task: str = "sst2", seed: int = 0, surrogate_ratio: float | None = 0.8,
                dev_examples: int | None = None) -> pd.DataFrame:
    """One row per design point, dense baselines included (block_shape "dense").

    With `dev_examples`, the table has the interval columns of a points.csv written since
    intervals exist (see `with_intervals`); without, it is a table from before them."""
    rng = np.random.default_rng(seed)
    acc_dense = 0.91
    rows = []
    for array in arrays:
        side = int(array.split("x")[0])
        dense_lat = 40.0 * (32 / side) ** 2 * 0.5 + 2.0
        designs = [("dense", 0.0, "dense")] + [(s, r, st) for s in shapes for r in ratios
                                                for st in strategies]
        for shape, ratio, strategy in designs:
            comp = 1.0 / (1.0 - ratio)
            if shape == "dense":
                lat, acc, fidelity, source = dense_lat, acc_dense, "dense", "measured"
            else:
                eff = _EFFICIENCY[shape] * (1.0 if strategy == "compact" else 0.85)
                ideal = dense_lat / comp
                lat = ideal / eff if ideal / eff < dense_lat else dense_lat * 0.98
                lat *= 1 + 0.01 * rng.random()
                acc = acc_dense - _ACC_SLOPE[shape] * ratio * comp / 2 + 0.002 * rng.random()
                surrogate = surrogate_ratio is not None and ratio == surrogate_ratio \
                    and shape in shapes[-2:]
                fidelity = "oneshot" if shape in shapes[:2] else "rgl"
                source = "surrogate" if surrogate else "measured"
            energy = lat * (0.9 if side == 16 else 1.6)
            params = dict(task=task, model="minilm-l6", block_shape=shape, prune_ratio=ratio,
                          sparse_strategy=strategy, dataflow="ws", array=array)
            pid = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
            rows.append(dict(
                point_id=pid, task=task, model="minilm-l6", block_shape=shape,
                prune_ratio=ratio, compression=comp, sparse_strategy=strategy, dataflow="ws",
                array=array, clock_mhz=200.0, precision="int8",
                latency_ms=lat, energy_mj=energy, sequences_per_s=1000.0 / lat,
                utilization=0.5, dsp_fraction=side * side / 2520, bram_fraction=0.4,
                fits=not (side == 32 and shape == "1x16" and ratio == 0.5),
                accuracy=acc, accuracy_metric="accuracy", accuracy_dense=acc_dense,
                accuracy_drop=100 * (acc_dense - acc), accuracy_fidelity=fidelity,
                accuracy_source=source, hw_source="simulated:analytical/0.1",
                provenance=json.dumps({"synthetic": True}), pareto=False))
    frame = pd.DataFrame(rows)
    return frame if dev_examples is None else with_intervals(frame, dev_examples)


def with_intervals(points: pd.DataFrame, dev_examples: int) -> pd.DataFrame:
    """`points` with accuracy_low/high = accuracy -+ 1.96 sqrt(p (1 - p) / dev_examples) (the
    binomial normal approximation: a stated rule, not a bootstrap), the drop interval against
    the dense point estimate (0 for dense rows) and accuracy_precision "fp32"."""
    acc = points["accuracy"]
    half = 1.96 * np.sqrt(acc * (1 - acc) / dev_examples)
    dense = points["block_shape"] == "dense"
    out = points.assign(accuracy_low=acc - half, accuracy_high=acc + half,
                        accuracy_precision="fp32")
    out["accuracy_drop_low"] = np.where(dense, 0.0,
                                        100 * (out["accuracy_dense"] - out["accuracy_high"]))
    out["accuracy_drop_high"] = np.where(dense, 0.0,
                                         100 * (out["accuracy_dense"] - out["accuracy_low"]))
    return out


STUDY = {
    "name": "synthetic_zcu102",
    "question": "Which block shape and compression give the fastest SST-2 model on the ZCU102 "
                "within 1 point of dense accuracy?",
    "model": {"name": "minilm-l6", "seq_len": 128, "batch": 1},
    "tasks": ["sst2"],
    "hardware": {"board": "zcu102", "pe_array": list(ARRAYS), "dataflow": ["ws"],
                 "sparse_strategy": list(STRATEGIES)},
    "objectives": [{"metric": "latency_ms", "direction": "min"},
                   {"metric": "energy_mj", "direction": "min"},
                   {"metric": "accuracy", "direction": "max"}],
    "constraints": {"max_accuracy_drop": 1.0, "fits_board": True},
}


def write_results_dir(folder: Path, points: pd.DataFrame | None = None,
                      study: dict | None = None) -> Path:
    """A results folder as the sweep leaves it (points.csv + study.yaml), figures not drawn."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    points = make_points() if points is None else points
    points.to_csv(folder / "points.csv", index=False)
    (folder / "study.yaml").write_text(yaml.safe_dump(study or STUDY, sort_keys=False))
    return folder
