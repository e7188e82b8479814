"""codesign: hardware/algorithm co-design of block-sparse BERT-class transformers.

The public API, along the data flow (checkpoint -> masks -> workload -> hardware model -> design
point -> results store -> Pareto/plots/report); each name lives in the module named beside it:

- checkpoints: `load_model` (a built-in name, a folder or a hub id already on disk)
- pruning: `oneshot_prune`, `prune_checkpoint` (prune, retrain, save checkpoint and masks)
- masks: `load_masks`, `save_masks`, `extract_masks`, `mask_statistics`
- workload: `model_config`, `encoder_workload` (ops named as the masks are keyed)
- glue / accuracy: `load_split`, `Recipe`, `AccuracyCache`, `measure`
- study / sweep: `load_study`, `run_sweep`, `describe` (the dry run)
- store / pareto / plots / report: `ResultsStore`, `pareto_mask`, `plot_study`, `write_report`

The hardware model is the separate package `hwmodels`. Names are imported on first use, so
`import codesign` stays light (no torch until a function that trains or evaluates runs).
The library logs through ``logging.getLogger("codesign")`` and configures no handler.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "load_model": "checkpoints",
    "oneshot_prune": "pruning", "prune_checkpoint": "pruning",
    "load_masks": "masks", "save_masks": "masks", "extract_masks": "masks",
    "mask_statistics": "masks",
    "model_config": "workload", "encoder_workload": "workload",
    "load_split": "glue",
    "Recipe": "accuracy", "AccuracyCache": "accuracy", "measure": "accuracy",
    "load_study": "study", "Study": "study", "StudyError": "study",
    "run_sweep": "sweep", "describe": "sweep",
    "ResultsStore": "store",
    "pareto_mask": "pareto",
    "plot_study": "plots",
    "write_report": "report",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'codesign' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"codesign.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
