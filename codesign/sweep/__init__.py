"""The study driver: design space, accuracy per (block, ratio), hardware simulation, optuna.

A design point is (task, block shape, prune ratio, one accelerator choice), keyed by a hash of
its parameters and of the study's evaluation context. Accuracy is measured once per distinct
(task, block shape, ratio, fidelity) through codesign.accuracy and reused across every
accelerator choice; the hardware model runs on the very mask file whose accuracy was measured.
optuna is the study engine and the results store (codesign.store); only the main process writes
it and the accuracy cache, while local processes or a dask.distributed cluster run the pure
hardware evaluations and, where they have the cores (dask: always), the accuracy measurements.

Modules, along the data flow:
  space         the design space (typed, built once from the study) and point identity
  measurements  accuracy and mask files per (task, block, ratio, fidelity)
  seeds         a point's accuracy over the training seeds of accuracy.seeds: means, envelopes
  hardware      the frozen HardwareJob and the pure worker function evaluate_hardware
  remote        an accuracy measurement on a worker: private cache, shipped files, bytes back
  executors     inline, local process pool, dask
  records       a point's record, its constraints and the feasibility rule
  runner        one run: evaluate points, store each as it finishes (Ctrl-C safe)
  search        the grid and the NSGA-II search
  promotion     multi-fidelity: which configurations get a costlier accuracy
  progress      the progress bar / lines (created by the CLI)
  estimate      the dry run
  driver        run_sweep: the loop, the points table and the written outputs
"""
from codesign.sweep.driver import (SweepInterrupted, SweepResult, points_table, run_sweep,
                                   write_outputs)
from codesign.sweep.estimate import accuracy_seconds, describe
from codesign.sweep.hardware import HardwareJob, MaskSource, evaluate_hardware
from codesign.sweep.measurements import AccuracyProvider, AccuracyResult
from codesign.sweep.progress import Progress
from codesign.sweep.promotion import select_promoted
from codesign.sweep.records import constraint_values, constraints, feasible, objective_values
from codesign.sweep.seeds import aggregate_seeds
from codesign.sweep.space import (DENSE, DesignPoint, DesignSpace, context_hash, context_of,
                                  distributions, hw_column)

__all__ = [
    "AccuracyProvider", "AccuracyResult", "DENSE", "DesignPoint", "DesignSpace", "HardwareJob",
    "MaskSource", "Progress", "SweepInterrupted", "SweepResult", "accuracy_seconds",
    "aggregate_seeds", "constraint_values", "constraints", "context_hash", "context_of",
    "describe", "distributions",
    "evaluate_hardware", "feasible", "hw_column", "objective_values",
    "points_table", "run_sweep", "select_promoted", "write_outputs",
]
