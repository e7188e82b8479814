"""Measured GLUE accuracy of block-pruned models, at three fidelities, with a persistent cache.

What is modelled
----------------
Every point starts from ONE dense model fine-tuned on the task (cached as a checkpoint folder in
the cache, so all points of all studies reuse it), then:

* ``oneshot``: prune one-shot by block magnitude (per matrix, the lowest-L2-norm blocks, exactly
  round(ratio * blocks) of them), evaluate on the dev split. Seconds per point.
* ``retrain``: oneshot, then masked retraining (pruned weights and their gradients held at zero)
  for ``retrain_examples`` x ``retrain_epochs``, evaluate.
* ``rgl``: the seed paper's pipeline from the dense fine-tuned model: reweighted group Lasso
  training (``rgl_examples`` x ``rgl_epochs``, lambda, eps, reweighting), hard pruning at the
  ratio, masked retraining (the ``retrain_*`` budget), evaluate.

``ratio`` is the fraction of blocks pruned in every prunable encoder matrix (q, k, v, attn_out,
ffn_in, ffn_out of every layer); embeddings, pooler and classifier stay dense. ``ratio == 0`` is the
dense fine-tuned model itself. Each AccuracyRecord carries the dense baseline beside the pruned
figure, the recipe, the seed, the wall time and the mask file of the pruned model (in the cache
folder), so the hardware model runs on the very masks whose accuracy was measured.

The default Recipe is sized for a 2-core CPU (no GPU). Rates measured here with the machine
idle (all-MiniLM-L6-v2, batch 32): training ~26 examples/s at seq 64 padded (~31 at seq 32;
SST-2's short phrases go faster with dynamic padding), evaluation ~136 dev sentences/s at seq 64.
Measured with the default Recipe on SST-2 (whole dev split, machine at load ~3 from other jobs):
the dense fine-tuning (2,000 examples, 1 epoch, lr 3e-4, seq 64; once per model x task, cached)
took 183 s and reached 0.797 (majority class 0.509); at 16x16, ratio 0.5 a ``oneshot`` point took
3.4 s (0.509), a ``retrain`` point 12.8 s (0.568), an ``rgl`` point 33.5 s (0.601); 1x1 ratio 0.5
``retrain`` 16.1 s (0.797). A default study of ~16 (block, ratio) points at ``retrain`` thus
needs about 4 min plus 1-3 min of dense fine-tuning per task from a cold cache (~9 min plus the
dense model at ``rgl``). On a heavily shared machine (load ~8 on the 2 cores) we measured 3-5x
longer. MiniLM needs a high learning rate at these budgets: dense lr 1e-4 left SST-2 at 0.56
after 20 steps, 3e-4 reached 0.77, 5e-5 stayed at the majority class.

What is ignored / how to scale up
---------------------------------
These recipes are far below the paper's (full training sets, 3 epochs, seq 128): the absolute
scores are low-budget scores and the differences between block shapes are the result, not the
absolute numbers. To scale up, raise ``dense_examples`` / ``retrain_examples`` /
``rgl_examples`` (None = the whole training split), the epochs and ``max_seq_len`` (128 for the
sentence-pair tasks RTE/MRPC/STS-B), e.g. ``Recipe.paper()``; a CUDA GPU is picked automatically by
the training loop. Evaluation always uses the whole dev split unless ``eval_examples`` is set.
Sampling noise (a few hundred dev sentences: +-1-3 points) is not modelled; repeat with other
seeds to see it. The GLUE data files are assumed to be the official ones (they are not part of
the cache key).

Cache
-----
``AccuracyCache``: one SQLite file (default ``$CODESIGN_CACHE_DIR/accuracy.sqlite``, else
``~/.cache/codesign/accuracy.sqlite``), keyed by (base checkpoint sha256, task, block shape,
ratio, fidelity, hash of the recipe fields that fidelity uses). An entry is written in one
transaction only after the measurement completed; the dense checkpoints (``dense/``) and mask files
(``masks/``) live beside the SQLite file and are moved into place atomically, so an interrupted
measurement leaves nothing half-written. ``export_csv(path)`` writes every entry.

No torch import at module level (the CLI imports this module lazily anyway).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from codesign.glue import GlueSplit, compute_metrics, get_task, load_split
from hwmodels import BlockShape

FIDELITIES: tuple[str, ...] = ("oneshot", "retrain", "rgl")
# Bump when the measuring procedure changes in a way that changes results: old entries stop
# matching instead of being served as if they came from the new procedure.
PROCEDURE_VERSION = 1
CACHE_ENV = "CODESIGN_CACHE_DIR"
_EVAL_BATCH = 64


class AccuracyError(ValueError):
    """Bad input to an accuracy measurement (one line naming the key and the fix)."""


# --- recipe ------------------------------------------------------------------------------------


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
    # dense fine-tuning (once per model x task; cached as a checkpoint)
    dense_examples: int | None = 2000
    dense_epochs: int = 1
    # MiniLM (sentence-embedding weights) barely moves at BERT's usual 2e-5..5e-5 in a few dozen
    # steps: measured on SST-2 (640 examples, seq 32, 20 steps) 1e-4 -> 0.56, 3e-4 -> 0.77 dev acc
    dense_lr: float = 3e-4
    # masked retraining (retrain and rgl)
    retrain_examples: int | None = 512
    retrain_epochs: int = 1
    retrain_lr: float = 1e-4
    # reweighted group Lasso stage (rgl only); the seed paper's eps and lambda
    rgl_examples: int | None = 512
    rgl_epochs: int = 1
    rgl_lr: float = 1e-4
    rgl_lambda: float = 1e-4
    rgl_eps: float = 1e-3
    rgl_reweight_every: int = 4  # optimizer steps between reweightings (paper: at milestone epochs)

    def __post_init__(self) -> None:
        for name in ("max_seq_len", "batch_size", "dense_epochs", "retrain_epochs", "rgl_epochs"):
            if int(getattr(self, name)) < 1:
                raise AccuracyError(f"recipe.{name}={getattr(self, name)}: must be >= 1")
        for name in ("eval_examples", "dense_examples", "retrain_examples", "rgl_examples"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise AccuracyError(f"recipe.{name}={v}: use a positive count or None (all)")
        for name in ("dense_lr", "retrain_lr", "rgl_lr", "rgl_eps"):
            if not float(getattr(self, name)) > 0:
                raise AccuracyError(f"recipe.{name}={getattr(self, name)}: must be > 0")
        if float(self.rgl_lambda) < 0:
            raise AccuracyError(f"recipe.rgl_lambda={self.rgl_lambda}: must be >= 0")

    @classmethod
    def quick(cls, examples: int = 48, seq: int = 32) -> "Recipe":
        """A smoke-test recipe (tens of examples): for tests and demos, not for conclusions."""
        return cls(max_seq_len=seq, batch_size=16, eval_examples=examples, dense_examples=examples,
                   retrain_examples=examples, rgl_examples=examples, rgl_reweight_every=1)

    @classmethod
    def paper(cls) -> "Recipe":
        """The seed paper's budget (full splits, 3 epochs, seq 128): hours on a CPU, use a GPU."""
        return cls(max_seq_len=128, dense_examples=None, dense_epochs=3, dense_lr=2e-5,
                   retrain_examples=None, retrain_epochs=3, retrain_lr=2e-5, rgl_examples=None,
                   rgl_epochs=3, rgl_lr=2e-5, rgl_reweight_every=500)

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
        """The fields a fidelity uses (what its cache key hashes), plus the fidelity."""
        fidelity = _check_fidelity(fidelity)
        prefixes = {"oneshot": ("dense_",), "retrain": ("dense_", "retrain_"),
                    "rgl": ("dense_", "retrain_", "rgl_")}[fidelity]
        shared = ("max_seq_len", "batch_size", "seed", "eval_examples")
        out = {k: v for k, v in self.to_dict().items()
               if k in shared or k.startswith(prefixes)}
        return {"fidelity": fidelity, "procedure_version": PROCEDURE_VERSION, **out}

    def dense_fields(self) -> dict[str, Any]:
        """The fields that define the dense fine-tuned checkpoint and its dev score."""
        shared = ("max_seq_len", "batch_size", "seed", "eval_examples")
        return {"procedure_version": PROCEDURE_VERSION,
                **{k: v for k, v in self.to_dict().items() if k in shared or k.startswith("dense_")}}

    def hash(self, fidelity: str) -> str:
        return _short_hash(self.stage_fields(fidelity))


def _short_hash(data: Any, n: int = 16) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _check_fidelity(fidelity: str) -> str:
    if fidelity not in FIDELITIES:
        raise AccuracyError(f"fidelity {fidelity!r}: choose one of {', '.join(FIDELITIES)}")
    return fidelity


def _block_text(block_shape: Any) -> str | None:
    """The canonical spelling of a block shape (the cache keys hold text), None for dense."""
    if block_shape is None or block_shape == "dense":
        return None
    try:
        return str(BlockShape.parse(block_shape))
    except (TypeError, ValueError) as err:
        raise AccuracyError(str(err)) from None


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracyRecord:
    """One measured point: the dense baseline and the pruned model's dev metrics, with provenance."""

    task: str
    metric: str  # headline metric name
    dense: float  # headline metric of the dense fine-tuned model
    pruned: float  # headline metric after pruning (== dense at ratio 0)
    metrics: dict[str, float]  # every official metric of the pruned model
    fidelity: str
    recipe: dict[str, Any]  # the recipe fields this fidelity used (what the key hashes)
    seconds: float  # wall time of this point (excluding the cached dense fine-tuning)
    masks_path: str | None  # mask file of the pruned model (None for the dense model)
    key: str
    model: str = ""
    model_sha256: str = ""
    block_shape: str | None = None
    ratio: float = 0.0
    seed: int = 0
    dense_metrics: dict[str, float] = field(default_factory=dict)
    dense_seconds: float = 0.0  # wall time of the dense fine-tuning (paid once per task)
    dense_checkpoint: str = ""
    density: float = 1.0  # kept weights / weights over the prunable matrices
    dev_examples: int = 0
    device: str = ""
    created: str = ""
    source: str = "measured"
    from_cache: bool = False

    @property
    def compression(self) -> float:
        """Prunable weights / kept weights (1.0 for dense)."""
        return 1.0 / self.density if self.density > 0 else math.inf

    @property
    def drop(self) -> float:
        return self.dense - self.pruned

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["compression"] = self.compression
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AccuracyRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def record_key(model_sha256: str, task: str, block_shape: str | None, ratio: float,
               fidelity: str, recipe: Recipe) -> str:
    """The cache key of a point (ratio 0 is the dense model whatever the block shape/fidelity)."""
    ratio = float(ratio)
    if ratio == 0.0:
        block_shape, fidelity = None, "oneshot"  # every dense point is the same measurement
    return _short_hash({"model": model_sha256, "task": get_task(task).name, "block": block_shape,
                        "ratio": round(ratio, 9), "fidelity": fidelity,
                        "recipe": recipe.hash(fidelity)}, n=24)


# --- cache -------------------------------------------------------------------------------------

_COLUMNS = ("key", "model", "model_sha256", "task", "block_shape", "ratio", "fidelity",
            "recipe_hash", "metric", "dense", "pruned", "density", "seconds", "masks_path",
            "created", "record")


def default_cache_path() -> Path:
    base = os.environ.get(CACHE_ENV)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "codesign"
    return root / "accuracy.sqlite"


class AccuracyCache:
    """SQLite file of measured points, plus the dense checkpoints and mask files beside it.

    `path`: the SQLite file, or a folder (then `<folder>/accuracy.sqlite`); None = the default
    (`$CODESIGN_CACHE_DIR/accuracy.sqlite` or `~/.cache/codesign/accuracy.sqlite`). Safe to share
    between processes (SQLite WAL, busy timeout; dense fine-tuning under a file lock).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        p = default_cache_path() if path is None else Path(path).expanduser()
        if p.suffix not in (".sqlite", ".db", ".sqlite3") or p.is_dir():
            p = p / "accuracy.sqlite"
        self.path = p
        self.root = p.parent
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AccuracyError(f"accuracy cache folder {self.root}: cannot create it ({err}); "
                                f"pass --cache DIR or set {CACHE_ENV}") from None
        with contextlib.closing(self._connect()) as conn, conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS accuracy (key TEXT PRIMARY KEY, model TEXT, "
                "model_sha256 TEXT, task TEXT, block_shape TEXT, ratio REAL, fidelity TEXT, "
                "recipe_hash TEXT, metric TEXT, dense REAL, pruned REAL, density REAL, "
                "seconds REAL, masks_path TEXT, created TEXT, record TEXT NOT NULL)")

    def __repr__(self) -> str:
        return f"AccuracyCache({str(self.path)!r})"

    @property
    def dense_dir(self) -> Path:
        return self.root / "dense"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60.0)

    def get(self, key: str) -> AccuracyRecord | None:
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute("SELECT record FROM accuracy WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        rec = AccuracyRecord.from_dict(json.loads(row[0]))
        if rec.masks_path and not Path(rec.masks_path).is_file():
            return None  # its mask file was deleted: measure again rather than serve a dangling path
        return dataclasses.replace(rec, from_cache=True)

    def put(self, record: AccuracyRecord) -> None:
        """Write one complete record in a single transaction."""
        data = record.to_dict()
        data["from_cache"] = False
        values = (record.key, record.model, record.model_sha256, record.task, record.block_shape,
                  record.ratio, record.fidelity, _short_hash(record.recipe), record.metric,
                  record.dense, record.pruned, record.density, record.seconds, record.masks_path,
                  record.created, json.dumps(data, sort_keys=True))
        with contextlib.closing(self._connect()) as conn, conn:
            conn.execute(f"INSERT OR REPLACE INTO accuracy ({', '.join(_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(_COLUMNS))})", values)

    def records(self) -> list[AccuracyRecord]:
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute("SELECT record FROM accuracy ORDER BY task, model, block_shape, "
                                "fidelity, ratio").fetchall()
        return [AccuracyRecord.from_dict(json.loads(r[0])) for r in rows]

    def __len__(self) -> int:
        with contextlib.closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM accuracy").fetchone()[0])

    def export_csv(self, path: str | Path) -> Path:
        """Every entry as one CSV row (metrics and recipe as JSON columns)."""
        path = Path(path)
        cols = ["key", "source", "model", "model_sha256", "task", "metric", "block_shape", "ratio",
                "density", "compression", "fidelity", "dense", "pruned", "drop", "metrics",
                "dense_metrics", "recipe", "seed", "seconds", "dense_seconds", "dev_examples",
                "device", "masks_path", "dense_checkpoint", "created"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            for rec in self.records():
                row = rec.to_dict()
                row["drop"] = rec.drop
                for k in ("metrics", "dense_metrics", "recipe"):
                    row[k] = json.dumps(row[k], sort_keys=True)
                writer.writerow({c: row.get(c) for c in cols})
        return path

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock (so two workers never fine-tune the same model)."""
        lock_dir = self.root / "locks"
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / f"{name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# --- the base checkpoint's identity -------------------------------------------------------------

_SHA_MEMO: dict[str, str] = {}


def model_sha256(model: str) -> str:
    """sha256 of a checkpoint's weights, without loading it (memoised per process)."""
    if model not in _SHA_MEMO:
        from codesign.checkpoints import checkpoint_sha256, load_model, resolve_checkpoint

        folder, _ = resolve_checkpoint(model)
        _SHA_MEMO[model] = checkpoint_sha256(folder) if folder is not None else \
            load_model(model).sha256
    return _SHA_MEMO[model]


# --- the dense fine-tuned model -----------------------------------------------------------------


@dataclass(frozen=True)
class DenseCheckpoint:
    """The dense model fine-tuned on a task (a save_pretrained folder in the cache)."""

    path: Path
    task: str
    metric: str
    metrics: dict[str, float]
    seconds: float  # fine-tuning + evaluation wall time when it was made
    model: str
    model_sha256: str
    recipe: dict[str, Any]
    dev_examples: int
    device: str

    @property
    def score(self) -> float:
        return self.metrics[self.metric]


def _dev_split(task: str, recipe: Recipe, glue_dir: Any) -> GlueSplit:
    return load_split(task, "dev", glue_dir=glue_dir, limit=recipe.eval_examples, seed=recipe.seed)


def _train_split(task: str, limit: int | None, recipe: Recipe, glue_dir: Any,
                 stage: int) -> GlueSplit:
    # each stage draws its own seeded sample, so retraining does not only replay the examples
    # the dense model was fine-tuned on
    return load_split(task, "train", glue_dir=glue_dir, limit=limit, seed=recipe.seed + stage)


def _train_config(recipe: Recipe, examples: int | None, epochs: int, lr: float) -> Any:
    from codesign.pruning.train import TrainConfig

    return TrainConfig(epochs=epochs, lr=lr, batch_size=recipe.batch_size,
                       max_seq_len=recipe.max_seq_len, seed=recipe.seed, max_examples=examples)


def _evaluate(model: Any, tokenizer: Any, task: str, dev: GlueSplit,
              recipe: Recipe) -> dict[str, float]:
    import numpy as np

    from codesign.pruning.train import evaluate

    preds = np.asarray(evaluate(model, tokenizer, dev, max_seq_len=recipe.max_seq_len,
                                batch_size=_EVAL_BATCH))
    if preds.ndim == 2:  # logits: class ids, or the regression output column
        preds = preds[:, 0] if preds.shape[1] == 1 else preds.argmax(axis=1)
    return compute_metrics(task, preds, dev.labels)


def _device_of(model: Any) -> str:
    try:
        return str(next(model.parameters()).device)
    except (StopIteration, AttributeError):
        return "cpu"


def dense_checkpoint(model: str, task: str, recipe: Recipe | None = None, glue_dir: Any = None,
                     cache: AccuracyCache | None = None, progress: bool = False) -> DenseCheckpoint:
    """The dense model fine-tuned on `task` by `recipe`, trained once and then served from the cache."""
    recipe = Recipe() if recipe is None else recipe
    cache = AccuracyCache() if cache is None else cache
    spec = get_task(task)
    sha = model_sha256(model)
    name = f"{sha[:16]}-{spec.name}-{_short_hash(recipe.dense_fields(), 12)}"
    final = cache.dense_dir / name
    info = final / "dense.json"
    if not info.is_file():
        with cache.lock(f"dense-{name}"):
            if not info.is_file():  # another process may have made it while we waited
                _fine_tune_dense(model, spec.name, recipe, glue_dir, cache, final, sha, progress)
    data = json.loads(info.read_text())
    return DenseCheckpoint(path=final, task=spec.name, metric=data["metric"],
                           metrics=data["metrics"], seconds=data["seconds"], model=model,
                           model_sha256=sha, recipe=data["recipe"],
                           dev_examples=data["dev_examples"], device=data.get("device", ""))


def _fine_tune_dense(model: str, task: str, recipe: Recipe, glue_dir: Any, cache: AccuracyCache,
                     final: Path, sha: str, progress: bool) -> None:
    from codesign.checkpoints import load_model, quiet_transformers
    from codesign.pruning.train import finetune

    t0 = time.perf_counter()
    train = _train_split(task, recipe.dense_examples, recipe, glue_dir, stage=0)
    dev = _dev_split(task, recipe, glue_dir)
    loaded = load_model(model, task=task)
    finetune(loaded.model, loaded.tokenizer, train,
             _train_config(recipe, recipe.dense_examples, recipe.dense_epochs, recipe.dense_lr),
             progress=progress)
    metrics = _evaluate(loaded.model, loaded.tokenizer, task, dev, recipe)
    seconds = time.perf_counter() - t0
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with quiet_transformers():  # no "Writing model shards" bar from library code
            loaded.model.save_pretrained(tmp)
            loaded.tokenizer.save_pretrained(tmp)
        (tmp / "dense.json").write_text(json.dumps({
            "model": model, "model_sha256": sha, "source": loaded.source, "task": task,
            "metric": get_task(task).headline, "metrics": metrics, "seconds": seconds,
            "recipe": recipe.dense_fields(), "train_examples": len(train),
            "dev_examples": len(dev), "device": _device_of(loaded.model),
            "created": _now()}, indent=1, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)  # a stale folder without dense.json
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- pruning a point ----------------------------------------------------------------------------


def _masks_metadata(dense: DenseCheckpoint, loaded: Any, block: str, ratio: float, method: str,
                    masks: Mapping[str, Any]) -> dict[str, Any]:
    roles = {}
    for name, layer, role in loaded.structure.prunable(loaded.model):
        if name in masks:
            roles[name] = [layer, role]
    # save_masks adds format, block_shape and matrix_shapes itself
    return {"source_checkpoint": str(dense.path), "source_sha256": loaded.sha256,
            "method": method, "ratio": ratio, "roles": roles, "task": dense.task,
            "base_model": dense.model, "base_sha256": dense.model_sha256}


def _save_masks_atomic(path: Path, masks: Mapping[str, Any], metadata: dict[str, Any]) -> Path:
    from codesign.masks import save_masks

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save_masks(tmp, dict(masks), metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _density(masks: Mapping[str, Any]) -> float:
    kept = total = 0.0
    for m in masks.values():
        n = m.matrix_shape[0] * m.matrix_shape[1]
        kept += m.density * n
        total += n
    return kept / total if total else 1.0


def _prune(fidelity: str, loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe,
           task: str, glue_dir: Any, progress: bool) -> dict[str, Any]:
    """Prune `loaded.model` in place by the fidelity's procedure; returns the masks."""
    from codesign.pruning import oneshot_prune

    if fidelity == "rgl":
        return _rgl(loaded, block, ratio, recipe, task, glue_dir, progress)
    masks = oneshot_prune(loaded.model, loaded.structure, block, ratio)
    if fidelity == "retrain":
        from codesign.pruning.train import finetune

        train = _train_split(task, recipe.retrain_examples, recipe, glue_dir, stage=1)
        finetune(loaded.model, loaded.tokenizer, train,
                 _train_config(recipe, recipe.retrain_examples, recipe.retrain_epochs,
                               recipe.retrain_lr), masks=masks, progress=progress)
    return masks


def _rgl(loaded: Any, block: tuple[int, int], ratio: float, recipe: Recipe, task: str,
         glue_dir: Any, progress: bool) -> dict[str, Any]:
    from codesign.pruning.rgl import RGLConfig, rgl_prune

    # one split for both stages (rgl_prune's interface); each stage's TrainConfig takes its own
    # seeded subset of it (max_examples)
    sizes = [recipe.rgl_examples, recipe.retrain_examples]
    limit = None if None in sizes else max(sizes)
    split = _train_split(task, limit, recipe, glue_dir, stage=2)
    # reweight every N optimizer steps: the low-budget recipes run far fewer than the paper's
    # milestone epochs [4, 8, 12, 16], which would never be reached
    cfg = RGLConfig(lambda_=recipe.rgl_lambda, eps=recipe.rgl_eps, milestones=(),
                    reweight_every=recipe.rgl_reweight_every, schedule_unit="step")
    out = rgl_prune(loaded.model, loaded.tokenizer, loaded.structure, split, block, ratio,
                    rgl=cfg,
                    train=_train_config(recipe, recipe.rgl_examples, recipe.rgl_epochs,
                                        recipe.rgl_lr),
                    retrain=_train_config(recipe, recipe.retrain_examples, recipe.retrain_epochs,
                                          recipe.retrain_lr),
                    progress=progress)
    return out.masks


def _resolve_point(model: str, task: str, block_shape: Any, ratio: float, fidelity: str,
                   ) -> tuple[str, str | None, float, str]:
    spec = get_task(task)
    fidelity = _check_fidelity(fidelity)
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise AccuracyError(f"ratio {ratio!r}: a number in [0, 1)") from None
    if not 0.0 <= ratio < 1.0:
        raise AccuracyError(f"ratio {ratio}: the fraction of blocks pruned must be in [0, 1)")
    block = _block_text(block_shape)
    if block is None and ratio > 0:
        raise AccuracyError(f"ratio {ratio} needs a block shape (e.g. --block 16x16; 1x1 = "
                            "unstructured)")
    return spec.name, block, ratio, fidelity


def measure(model: str, task: str, block_shape: Any, ratio: float, fidelity: str = "retrain",
            recipe: Recipe | None = None, glue_dir: Any = None, cache: AccuracyCache | None = None,
            progress: bool = False) -> AccuracyRecord:
    """Measure (or serve from the cache) the dev metric of `model` pruned at one point.

    `block_shape`: "16x16" or (16, 16) in the parameter orientation (rows = output features);
    None only with ratio 0 (the dense model). `cache=None` uses the default cache location.
    """
    recipe = Recipe() if recipe is None else recipe
    task, block, ratio, fidelity = _resolve_point(model, task, block_shape, ratio, fidelity)
    cache = AccuracyCache() if cache is None else cache
    sha = model_sha256(model)
    key = record_key(sha, task, block, ratio, fidelity, recipe)
    hit = cache.get(key)
    if hit is not None:
        return hit
    dense = dense_checkpoint(model, task, recipe, glue_dir, cache, progress)
    t0 = time.perf_counter()
    common = dict(task=task, metric=dense.metric, dense=dense.score, fidelity=fidelity,
                  recipe=recipe.stage_fields(fidelity), key=key, model=model, model_sha256=sha,
                  block_shape=block, ratio=ratio, seed=recipe.seed, dense_metrics=dense.metrics,
                  dense_seconds=dense.seconds, dense_checkpoint=str(dense.path),
                  dev_examples=dense.dev_examples, created=_now())
    if ratio == 0.0:
        # the dense model: its score is the cached dense evaluation, nothing is pruned
        record = AccuracyRecord(pruned=dense.score, metrics=dict(dense.metrics),
                                seconds=time.perf_counter() - t0, masks_path=None, density=1.0,
                                device=dense.device,
                                **{**common, "fidelity": "oneshot", "block_shape": None,
                                   "recipe": recipe.stage_fields("oneshot")})
        cache.put(record)
        return record
    from codesign.checkpoints import load_model

    masks_path = cache.masks_dir / f"{task}-{block}-r{ratio:g}-{fidelity}-{key}.safetensors"
    committed = False
    try:
        loaded = load_model(dense.path, task=task)
        masks = _prune(fidelity, loaded, BlockShape.parse(block), ratio, recipe, task, glue_dir,
                       progress)
        metrics = _evaluate(loaded.model, loaded.tokenizer, task,
                            _dev_split(task, recipe, glue_dir), recipe)
        _save_masks_atomic(masks_path, masks,
                           _masks_metadata(dense, loaded, block, ratio, fidelity, masks))
        record = AccuracyRecord(pruned=metrics[dense.metric], metrics=metrics,
                                seconds=time.perf_counter() - t0, masks_path=str(masks_path),
                                density=_density(masks), device=_device_of(loaded.model),
                                **common)
        cache.put(record)
        committed = True
        return record
    finally:
        if not committed:
            masks_path.unlink(missing_ok=True)


def oneshot_masks(model: str, task: str, block_shape: Any, ratio: float,
                  recipe: Recipe | None = None, glue_dir: Any = None,
                  cache: AccuracyCache | None = None) -> Path:
    """Mask file of the dense fine-tuned model pruned one-shot (no evaluation), cached.

    For hardware-only design points: the same masks a `oneshot` measurement of this point uses.
    """
    recipe = Recipe() if recipe is None else recipe
    task, block, ratio, _ = _resolve_point(model, task, block_shape, ratio, "oneshot")
    if block is None:
        raise AccuracyError("oneshot_masks needs a block shape (ratio 0: use dense masks)")
    cache = AccuracyCache() if cache is None else cache
    key = record_key(model_sha256(model), task, block, ratio, "oneshot", recipe)
    path = cache.masks_dir / f"{task}-{block}-r{ratio:g}-oneshot-{key}.safetensors"
    if path.is_file():
        return path
    from codesign.checkpoints import load_model
    from codesign.pruning import oneshot_prune

    dense = dense_checkpoint(model, task, recipe, glue_dir, cache)
    loaded = load_model(dense.path, task=task)
    masks = oneshot_prune(loaded.model, loaded.structure, BlockShape.parse(block), ratio)
    return _save_masks_atomic(path, masks,
                              _masks_metadata(dense, loaded, block, ratio, "oneshot", masks))
