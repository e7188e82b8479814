"""The training budget of an accuracy measurement (Recipe), its presets, and the fidelities.

What is modelled: which examples, epochs, learning rates and sequence length each stage of a
measurement uses (dense fine-tuning; calibrated one-shot pruning; masked retraining; reweighted
group Lasso), and which of
those fields each fidelity depends on: a fidelity's cache key hashes only those, so changing the
retraining budget keeps the oneshot entries valid.

What is ignored: the GLUE data files themselves (assumed to be the official ones; not hashed).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codesign.hashing import short_hash
from codesign.pruning import GLOBAL_MIN_DENSITY, SCOPES, natural_scope

# Cheapest first: the order a study's stages must follow.
FIDELITIES: tuple[str, ...] = ("oneshot", "calibrated", "retrain", "rgl")
# Bump when the measuring procedure changes in a way that changes results: old entries stop
# matching instead of being served as if they came from the new procedure.
PROCEDURE_VERSION = 2
RECIPE_PRESETS: tuple[str, ...] = ("default", "quick", "paper")
_SHARED = ("max_seq_len", "batch_size", "seed", "eval_examples")
_STAGE_PREFIXES = {"oneshot": ("dense_",), "calibrated": ("dense_", "calib_"),
                   "retrain": ("dense_", "retrain_"), "rgl": ("dense_", "retrain_", "rgl_")}
_DISTILL = ("distill", "distill_alpha", "distill_temperature")
_HIDDEN = "distill_hidden"  # enters the keys only when not 0 (older keys hold)
_DISTILLED = ("retrain", "rgl")  # the fidelities with training steps that may distil
# codesign.pruning.calibrate.SALIENCIES, and the Fisher saliency of codesign.pruning.fisher
CALIB_SALIENCIES: tuple[str, ...] = ("norm", "obs", "fisher")
_FILL = "dense_fill"  # enters the keys only when it may fill (older keys hold)
_SCOPE = "calib_scope"  # enters the keys only when not its saliency's own (older keys hold)
_FLOOR = "calib_min_density"  # enters the keys only where it applies (older keys hold)
_FISHER = "calib_fisher_examples"  # enters the keys only below calib_examples (older keys hold)
# where `retrain` starts: magnitude one-shot masks and weights (the default, seed-faithful) or the
# calibrated fidelity's masks and reconstructed weights (which then read the calib_* fields)
RETRAIN_STARTS: tuple[str, ...] = ("magnitude", "calibrated")
_START = "retrain_start"  # not matched by the "retrain_" prefix: enters only retrain's key
_HOLDOUT = "recovery_holdout"  # enters only retrain's key, and only when not 0


class AccuracyError(ValueError):
    """Bad input to an accuracy measurement (one line naming the key and the fix)."""


def check_fidelity(fidelity: str) -> str:
    """`fidelity` itself if it is one of FIDELITIES, else a one-line AccuracyError."""
    if fidelity not in FIDELITIES:
        raise AccuracyError(f"fidelity {fidelity!r}: choose one of {', '.join(FIDELITIES)}")
    return fidelity


@dataclass(frozen=True)
class Recipe:
    """The training budget of a measurement. None for an example count = the whole split.

    Fields are grouped by the stage that uses them; the cache key of a fidelity hashes only the
    fields that fidelity uses, so changing the retraining budget keeps oneshot entries valid.
    """

    # shared by every stage
    max_seq_len: int = 64
    batch_size: int = 32
    seed: int = 0
    eval_examples: int | None = None  # dev examples evaluated (None = the whole dev split)
    # dense fine-tuning (once per model x task; cached as a checkpoint). 16,000 of SST-2's 67,349
    # training sentences: within 1.5 points of the whole split (docs/accuracy.md, "Dense baseline")
    dense_examples: int | None = 16000
    dense_epochs: int = 1
    # a training split smaller than dense_examples (STS-B's 5,749 pairs, CoLA's 8,551) is passed
    # over whole times until dense_examples are seen (STS-B: 3 passes), so every task's dense
    # model gets about the same number of steps; false: one pass over the split (the behaviour
    # before this field; its keys hold, as `dense_fill` enters them only when it fills)
    dense_fill: bool = True
    # at the default's 500 steps, 1e-4 beats 3e-4 on SST-2 (0.878 against 0.865: docs/accuracy.md,
    # "Dense baseline"); a budget of a few dozen steps needs 3e-4 (Recipe.quick)
    dense_lr: float = 1e-4
    # masked retraining (retrain and rgl): 4,000 examples at lr 3e-5 were chosen among six
    # budgets and rates by held-out training sentences (docs/accuracy.md, "Retraining budget")
    retrain_examples: int | None = 4000
    retrain_epochs: int = 1
    retrain_lr: float = 3e-5
    # retrain only: "calibrated" (default) starts masked retraining from calibrated one-shot
    # pruning; "magnitude" from the magnitude one-shot masks and dense weights (the seed's way)
    retrain_start: str = "calibrated"
    # retrain only: training sentences held out of the retraining sample (disjoint from it) that
    # decide whether the retrained weights or their starting weights are kept: masked retraining
    # can lower the metric (STS-B from calibrated weights: docs/accuracy.md, "Recovery"); 0 keeps
    # the retrained weights always (the first version's behaviour). 256 decided by 3-5 sentences
    recovery_holdout: int = 1024
    # reweighted group Lasso stage (rgl only); the seed paper's eps and lambda
    rgl_examples: int | None = 512
    rgl_epochs: int = 1
    rgl_lr: float = 1e-4
    rgl_lambda: float = 1e-4
    rgl_eps: float = 1e-3
    rgl_reweight_every: int = 4  # optimizer steps between reweightings (paper: at milestone epochs)
    # calibrated one-shot pruning (calibrated only): unlabelled training sentences (the
    # least-squares re-fit reads them all; 1,024 re-fit 16x16 at 2x 1.6 points better than 256:
    # docs/accuracy.md, "Calibration size and floor"), block saliency ("norm", "obs" or
    # "fisher"), the scope of its ranking ("matrix": every matrix loses the same fraction of its
    # blocks; "global", fisher only: the least salient blocks of the whole model, each matrix
    # its own density; None: the saliency's own, `natural_scope`) and the least-squares damping
    # (fraction of mean diag X^T X); measured in docs/accuracy.md, "Calibrated fidelity"
    calib_examples: int | None = 1024
    calib_saliency: str = "fisher"
    calib_scope: str | None = None
    calib_damping: float = 0.01
    # fisher only: the Fisher scores read the first this many calibration sentences (None: all);
    # their cost is one backward pass per class per sentence, and 1,024 ranked about as well as
    # 256 (+0.2 at 16x16 and 4x4, +1.3 at 1x16, maybe noise: docs/accuracy.md)
    calib_fisher_examples: int | None = 256
    # the global ranking's per-matrix floor: every matrix keeps at least this fraction of its
    # blocks (codesign.pruning.fisher.global_keep); 0 = none. The diagonal Fisher ignores that
    # removing many blocks of one matrix costs more than their sum, and without a floor high
    # ratios empty whole matrices (codesign.pruning.GLOBAL_MIN_DENSITY)
    calib_min_density: float = GLOBAL_MIN_DENSITY
    # distillation in recovery (retrain and rgl only): loss (1 - alpha) * CE + alpha * T^2 *
    # KL(teacher/T || student/T) from the dense model's cached logits (codesign.accuracy.teacher).
    # On by default; distill=false restores plain cross-entropy. alpha 0.5 and T 2.0 are common
    # choices (Hinton et al. 2015 use T in 1..20), not tuned here
    distill: bool = True
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    # hidden-state matching on top (0: off): the weight of the mean squared difference of the
    # student's and the dense model's encoder-layer hidden states (codesign.pruning.train.
    # hidden_distill_loss); the dense model then runs on every training batch. Enters the keys
    # only when not 0 (older keys hold)
    distill_hidden: float = 0.0
    # fake quantization (a measurement at a precision other than fp32 only; codesign.accuracy.
    # quantize): training sentences (a seeded sample, never the dev split) whose largest |x|
    # sets each quantized GEMM's activation scale. Enters the cache key, with the precision,
    # only when the precision is not fp32 (`quant_fields`): fp32 keys are those of before
    quant_calib_examples: int | None = 256

    def __post_init__(self) -> None:
        for name in ("max_seq_len", "batch_size", "dense_epochs", "retrain_epochs", "rgl_epochs"):
            if int(getattr(self, name)) < 1:
                raise AccuracyError(f"recipe.{name}={getattr(self, name)}: must be >= 1")
        for name in ("eval_examples", "dense_examples", "retrain_examples", "rgl_examples",
                     "calib_examples", "calib_fisher_examples", "quant_calib_examples"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise AccuracyError(f"recipe.{name}={v}: use a positive count or None (all)")
        if int(self.recovery_holdout) < 0:
            raise AccuracyError(f"recipe.recovery_holdout={self.recovery_holdout}: a count of "
                                "held-out training sentences >= 0 (0 = keep retrained weights)")
        for name in ("dense_lr", "retrain_lr", "rgl_lr", "rgl_eps", "calib_damping"):
            if not float(getattr(self, name)) > 0:
                raise AccuracyError(f"recipe.{name}={getattr(self, name)}: must be > 0")
        if float(self.rgl_lambda) < 0:
            raise AccuracyError(f"recipe.rgl_lambda={self.rgl_lambda}: must be >= 0")
        if not isinstance(self.dense_fill, bool):
            raise AccuracyError(f"recipe.dense_fill={self.dense_fill!r}: use true or false")
        if not isinstance(self.distill, bool):
            raise AccuracyError(f"recipe.distill={self.distill!r}: use true or false")
        if not 0.0 <= float(self.distill_alpha) <= 1.0:
            raise AccuracyError(f"recipe.distill_alpha={self.distill_alpha}: must lie in [0, 1]")
        if not float(self.distill_temperature) > 0:
            raise AccuracyError(f"recipe.distill_temperature={self.distill_temperature}: must "
                                "be > 0")
        if not float(self.distill_hidden) >= 0:
            raise AccuracyError(f"recipe.distill_hidden={self.distill_hidden}: a weight >= 0 "
                                "(0 = off)")
        if self.distill_hidden and not self.distill:
            raise AccuracyError(f"recipe.distill_hidden={self.distill_hidden} needs distill: "
                                "true (or set distill_hidden: 0)")
        if self.retrain_start not in RETRAIN_STARTS:
            raise AccuracyError(f"recipe.retrain_start={self.retrain_start!r}: choose one of "
                                f"{', '.join(RETRAIN_STARTS)}")
        if self.calib_saliency not in CALIB_SALIENCIES:
            raise AccuracyError(f"recipe.calib_saliency={self.calib_saliency!r}: choose one of "
                                f"{', '.join(CALIB_SALIENCIES)}")
        if self.calib_scope is not None and self.calib_scope not in SCOPES:
            raise AccuracyError(f"recipe.calib_scope={self.calib_scope!r}: choose one of "
                                f"{', '.join(SCOPES)}")
        if not 0.0 <= float(self.calib_min_density) < 1.0:
            raise AccuracyError(f"recipe.calib_min_density={self.calib_min_density}: a fraction "
                                "of each matrix's blocks in [0, 1)")
        if self.scope == "global" and self.calib_saliency != "fisher":
            raise AccuracyError(f"recipe.calib_scope=global needs calib_saliency=fisher (the "
                                f"{self.calib_saliency} scores of different matrices do not "
                                "compare); use calib_scope=matrix")

    @classmethod
    def quick(cls, examples: int = 48, seq: int = 32) -> "Recipe":
        """A smoke-test recipe (tens of examples): for tests and demos, not for conclusions."""
        return cls(max_seq_len=seq, batch_size=16, eval_examples=examples, dense_examples=examples,
                   dense_lr=3e-4, dense_fill=False, retrain_lr=1e-4,
                   retrain_examples=examples, rgl_examples=examples, rgl_reweight_every=1,
                   calib_examples=examples, recovery_holdout=examples)

    @classmethod
    def paper(cls) -> "Recipe":
        """The seed paper's budget and method (full splits, 3 epochs, seq 128, magnitude masks,
        no distillation): hours on a CPU, use a GPU."""
        return cls(max_seq_len=128, dense_examples=None, dense_epochs=3, dense_lr=2e-5,
                   retrain_examples=None, retrain_epochs=3, retrain_lr=2e-5, rgl_examples=None,
                   rgl_epochs=3, rgl_lr=2e-5, rgl_reweight_every=500,
                   retrain_start="magnitude", distill=False, recovery_holdout=0)

    @classmethod
    def preset(cls, name: str) -> "Recipe":
        """One of RECIPE_PRESETS by name."""
        if name not in RECIPE_PRESETS:
            raise AccuracyError(f"recipe {name!r} unknown; allowed: {', '.join(RECIPE_PRESETS)}")
        return {"default": cls, "quick": cls.quick, "paper": cls.paper}[name]()

    @classmethod
    def from_spec(cls, spec: str | Mapping[str, Any]) -> "Recipe":
        """A recipe from a study's spelling: a preset name, or {base: PRESET, FIELD: value, ...}.

        Errors are one line naming the unknown preset or field and the allowed ones.
        """
        data = {"base": spec} if isinstance(spec, str) else dict(spec)
        preset = cls.preset(data.pop("base", "default")).to_dict()
        unknown = sorted(set(data) - set(preset))
        if unknown:
            raise AccuracyError(f"recipe field {unknown[0]!r} unknown; allowed: base, "
                                f"{', '.join(sorted(preset))}")
        return cls.from_dict({**preset, **data})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"fidelity", "procedure_version"})
        if unknown:
            raise AccuracyError(f"recipe: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(sorted(names))}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stage_fields(self, fidelity: str) -> dict[str, Any]:
        """The fields a fidelity uses (what its cache key hashes), plus the fidelity.

        The distillation fields enter only retrain and rgl, and only when `distill` is on: a
        recipe without distillation keeps the keys it had before these fields existed
        (`distill_hidden` only when not 0).
        Likewise `retrain_start` (with the calib_* fields it then reads) enters only retrain's
        key, and only when it is not "magnitude"; `recovery_holdout` only retrain's, when not 0;
        `calib_scope` only when it is not its saliency's `natural_scope`, `calib_min_density`
        only when not 0 with the global ranking, `calib_fisher_examples` only with fisher and
        fewer than `calib_examples`.
        """
        fidelity = check_fidelity(fidelity)
        prefixes = _STAGE_PREFIXES[fidelity]
        fields = self.to_dict()
        out = {k: v for k, v in fields.items()
               if k not in (_START, _HOLDOUT) and (k in _SHARED or k.startswith(prefixes))}
        if self.distills(fidelity):
            out.update({k: v for k, v in fields.items() if k in _DISTILL})
            if self.distill_hidden:
                out[_HIDDEN] = self.distill_hidden
        if fidelity == "retrain" and self.recovery_holdout:
            out[_HOLDOUT] = self.recovery_holdout
        if fidelity == "retrain" and self.retrain_start != RETRAIN_STARTS[0]:
            out.update({k: v for k, v in fields.items()
                        if k == _START or k.startswith("calib_")})
        if self.calib_scope in (None, natural_scope(self.calib_saliency)):
            out.pop(_SCOPE, None)
        if not float(self.calib_min_density) or self.scope != "global":
            out.pop(_FLOOR, None)
        if self.calib_saliency != "fisher" or self.calib_fisher_examples is None or (
                self.calib_examples is not None
                and self.calib_fisher_examples >= self.calib_examples):
            out.pop(_FISHER, None)  # every calibration sentence, as before the field
        return {"fidelity": fidelity, "procedure_version": PROCEDURE_VERSION,
                **self._fill_keyed(out)}

    @property
    def scope(self) -> str:
        """The calibrated ranking's scope: `calib_scope`, or the saliency's `natural_scope`."""
        return self.calib_scope or natural_scope(self.calib_saliency)

    def quant_fields(self, precision: str) -> dict[str, Any]:
        """What a measurement at `precision` (canonical, codesign.accuracy.quantize) adds to its
        cache key and its record's recipe: nothing at fp32; else the precision and
        `quant_calib_examples` (the fields no fidelity's `stage_fields` hashes)."""
        if precision == "fp32":
            return {}
        return {"precision": precision, "quant_calib_examples": self.quant_calib_examples}

    def distills(self, fidelity: str) -> bool:
        """Whether `fidelity`'s training distils from the dense model under this recipe."""
        return self.distill and check_fidelity(fidelity) in _DISTILLED

    def dense_fields(self) -> dict[str, Any]:
        """The fields that define the dense fine-tuned checkpoint and its dev score."""
        return {"procedure_version": PROCEDURE_VERSION,
                **self._fill_keyed({k: v for k, v in self.to_dict().items()
                                    if k in _SHARED or k.startswith("dense_")})}

    def _fill_keyed(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields` with `dense_fill` only where it may change the dense model (on, with a
        count of dense examples): keys of recipes that cannot fill are those of before."""
        if not (self.dense_fill and self.dense_examples is not None):
            fields.pop(_FILL, None)
        return fields

    def dense_passes(self, split_examples: int) -> int:
        """Passes over a training split of `split_examples` examples the dense stage makes:
        `dense_epochs`, times the whole passes that fill `dense_examples` when `dense_fill`."""
        fill = self.dense_fill and self.dense_examples is not None
        repeat = -(-int(self.dense_examples) // max(int(split_examples), 1)) if fill else 1
        return int(self.dense_epochs) * max(repeat, 1)

    def hash(self, fidelity: str) -> str:
        """The 16-hex-digit hash of `stage_fields(fidelity)` (part of the cache key)."""
        return short_hash(self.stage_fields(fidelity))
