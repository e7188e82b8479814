"""The study: a YAML description of a co-design sweep, validated with pydantic.

Modules, along the data flow: `schema` (the pydantic models, each key's rule; the `pruning`
section in `pruning_spec`, the validators' shared pieces in `validators`), `loading` (YAML
text -> Study, or one `FILE:LINE key: message` error), `hardware` (an accelerator choice as a
typed value, resolved once into its board overrides, hwmodels Accelerator and resource fit).
"""
from codesign.study.hardware import (AcceleratorChoice, Fit, ResolvedChoice, accelerator_choices,
                                     board_overrides, fit_of, resolve)
from codesign.study.loading import StudyError, check_hardware, load_study, node_line
from codesign.study.schema import (BUFFERS, DATAFLOWS, OBJECTIVE_METRICS, PRECISIONS,
                                   SPARSE_STRATEGIES, AccuracySpec,
                                   ConstraintSpec, HardwareSpec, ModelSpec, ObjectiveSpec,
                                   PruningSpec, SearchSpec, StageSpec, Study)

__all__ = [
    "AcceleratorChoice", "AccuracySpec", "BUFFERS", "ConstraintSpec", "DATAFLOWS", "Fit",
    "HardwareSpec", "ModelSpec", "OBJECTIVE_METRICS", "ObjectiveSpec", "PRECISIONS",
    "PruningSpec", "ResolvedChoice", "SPARSE_STRATEGIES", "SearchSpec",
    "StageSpec", "Study", "StudyError", "accelerator_choices", "board_overrides",
    "check_hardware", "fit_of", "load_study", "node_line", "resolve",
]
