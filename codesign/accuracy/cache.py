"""The accuracy cache: measured points (AccuracyRecord) keyed by what determines them.

What is modelled: one SQLite file (default ``$CODESIGN_CACHE_DIR/accuracy.sqlite``, else
``~/.cache/codesign/accuracy.sqlite``), keyed by (base checkpoint sha256, task, block shape,
ratio, fidelity, hash of the recipe fields that fidelity uses), with the dense checkpoints
(``dense/``) and mask files (``masks/``) beside it. An entry is written in one transaction only
after its measurement completed; ``export_csv(path)`` writes every entry. Each record carries the
95% dev-set bootstrap interval of its score (in its metrics dicts; ``pruned_low``/``pruned_high``,
``dense_low``/``dense_high``, also table columns) and the precision it was measured at
(``fp32``, or a hardware precision such as ``w4a8``: then the precision is part of the key).

What is ignored: the GLUE data files (not part of the key), and entries of another
PROCEDURE_VERSION (never served: their keys differ). The key derivation below is fixed: the
cache keeps serving entries written by earlier versions of this code only while it is unchanged.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesign.accuracy.recipe import AccuracyError, Recipe
from codesign.glue import get_task, interval_keys
from codesign.hashing import short_hash
from hwmodels import BlockShape

CACHE_ENV = "CODESIGN_CACHE_DIR"


def block_text(block_shape: Any) -> str | None:
    """A block shape as the cache keys spell it, ``str(BlockShape)`` ("16x16"); None for dense.

    The keys hold text, not a BlockShape: every key written so far used this spelling, so it
    must stay ``str(BlockShape.parse(...))``. Accepts what BlockShape.parse accepts.
    """
    if block_shape is None or block_shape == "dense":
        return None
    try:
        return str(BlockShape.parse(block_shape))
    except (TypeError, ValueError) as err:
        raise AccuracyError(str(err)) from None


#: The interval columns of a record (properties of AccuracyRecord, columns of the cache table).
INTERVAL_FIELDS = ("pruned_low", "pruned_high", "dense_low", "dense_high")


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
    precision: str = "fp32"  # numeric precision the dev metric was measured at (provenance)
    # retrain with recipe.recovery_holdout: the held-out metric of the starting and the retrained
    # weights and which were kept ("start" or "retrained"); empty otherwise
    recovery: dict[str, Any] = field(default_factory=dict)
    # a latency-aware point (codesign.accuracy.measurement.measure_allocated): what made its
    # masks (method, speedup target, accelerator identity, workload, engine) and what the
    # allocation reached (simulated latency, speedup, block density); empty for uniform points
    allocation: dict[str, Any] = field(default_factory=dict)
    # PE-balanced masks (codesign.pruning.balance): the balance group geometry that made them
    # (`balance_fields`, {"pe_columns": C}, part of the key); empty for unbalanced points
    balance: dict[str, Any] = field(default_factory=dict)

    # The dev-set bootstrap interval of the headline metric lives in the metrics dicts, under
    # codesign.glue.interval_keys(metric), as codesign.accuracy.dense.evaluate_dev returns it
    # (one source, so it travels through dense.json and the record JSON unchanged). Records
    # measured before intervals existed have none: NaN, shown as unknown.

    def _bound(self, metrics: Mapping[str, float], which: int) -> float:
        value = metrics.get(interval_keys(self.metric)[which])
        return math.nan if value is None else float(value)

    @property
    def pruned_low(self) -> float:
        """Low end of the 95% bootstrap interval of `pruned` over the dev set (NaN: unknown)."""
        return self._bound(self.metrics, 0)

    @property
    def pruned_high(self) -> float:
        return self._bound(self.metrics, 1)

    @property
    def dense_low(self) -> float:
        """The dense model's own interval (NaN when its dense.json predates intervals)."""
        return self._bound(self.dense_metrics, 0)

    @property
    def dense_high(self) -> float:
        return self._bound(self.dense_metrics, 1)

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
        for name in INTERVAL_FIELDS:  # None, not NaN, so --json output stays standard JSON
            value = getattr(self, name)
            out[name] = value if math.isfinite(value) else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AccuracyRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def balance_fields(balance: Any) -> dict[str, int] | None:
    """What of a PE balance (a `codesign.pruning.balance.PEBalance`, or None) decides its masks
    once the model and block shape are known: the balance group geometry, i.e. the PE columns
    the groups follow (`hwmodels.sparsity.balance_groups(out, bh, C)`). Two accelerators of the
    same array width therefore share one key; the rest of the accelerator does not enter it."""
    if balance is None:
        return None
    cols = int(getattr(balance, "cols", 0))
    if cols < 1:
        raise AccuracyError(f"balance {balance!r}: a PEBalance with cols >= 1 (the PE columns)")
    return {"pe_columns": cols}


def record_key(model_sha256: str, task: str, block_shape: str | None, ratio: float,
               fidelity: str, recipe: Recipe, precision: str = "fp32",
               balance: Mapping[str, Any] | None = None) -> str:
    """The cache key of a point (ratio 0 is the dense model whatever the block shape/fidelity).

    `block_shape` is the text of `block_text` (or None); `precision` the canonical precision the
    point is evaluated at (codesign.accuracy.quantize.accuracy_precision). Fixed: changing the
    hashed dict would orphan every cached entry (tests/codesign/test_accuracy_keys.py pins its
    values), so the precision (with the calibration size of the quantization,
    `Recipe.quant_fields`) enters it only when it is not fp32: fp32 keys are those of before.
    Likewise `balance` (`balance_fields`: PE-balanced masks) enters only when given, and never
    at ratio 0 (all blocks kept): unbalanced keys are those of before.
    """
    ratio = float(ratio)
    if ratio == 0.0:
        block_shape, fidelity = None, "oneshot"  # every dense point is the same measurement
    hashed = {"model": model_sha256, "task": get_task(task).name, "block": block_shape,
              "ratio": round(ratio, 9), "fidelity": fidelity, "recipe": recipe.hash(fidelity)}
    hashed.update(recipe.quant_fields(precision))
    if balance and ratio != 0.0:
        hashed["balance"] = dict(balance)
    return short_hash(hashed, n=24)


# --- cache -------------------------------------------------------------------------------------

_COLUMNS = ("key", "model", "model_sha256", "task", "block_shape", "ratio", "fidelity",
            "recipe_hash", "metric", "dense", "pruned", "density", "seconds", "masks_path",
            "created", "record")
# Added after the first files were written: `_add_interval_columns` migrates a file in place
# (ALTER TABLE) on its first write; rows written before hold NULL there (and no interval in
# their record JSON), which AccuracyRecord reports as NaN: unknown.
_INTERVAL_COLUMNS = INTERVAL_FIELDS


def _add_interval_columns(conn: sqlite3.Connection) -> None:
    """Add the interval columns the table lacks (REAL, NULL for existing rows)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(accuracy)")}
    for name in _INTERVAL_COLUMNS:
        if name in have:
            continue
        try:
            conn.execute(f"ALTER TABLE accuracy ADD COLUMN {name} REAL")
        except sqlite3.OperationalError as err:  # another process added it first
            if "duplicate column" not in str(err):
                raise


def default_cache_path() -> Path:
    """``$CODESIGN_CACHE_DIR/accuracy.sqlite``, else ``~/.cache/codesign/accuracy.sqlite``."""
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
        self._migrated = False
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
        """Write one complete record in a single transaction (the file's first write adds the
        interval columns when it predates them: reading never changes a file's schema)."""
        data = record.to_dict()
        data["from_cache"] = False
        values = (record.key, record.model, record.model_sha256, record.task, record.block_shape,
                  record.ratio, record.fidelity, short_hash(record.recipe), record.metric,
                  record.dense, record.pruned, record.density, record.seconds, record.masks_path,
                  record.created, json.dumps(data, sort_keys=True))
        values += tuple(data[name] for name in _INTERVAL_COLUMNS)
        columns = _COLUMNS + _INTERVAL_COLUMNS
        with contextlib.closing(self._connect()) as conn, conn:
            if not self._migrated:
                _add_interval_columns(conn)
                self._migrated = True
            conn.execute(f"INSERT OR REPLACE INTO accuracy ({', '.join(columns)}) VALUES "
                         f"({', '.join('?' * len(columns))})", values)

    def records(self) -> list[AccuracyRecord]:
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute("SELECT record FROM accuracy ORDER BY task, model, block_shape, "
                                "fidelity, ratio").fetchall()
        return [AccuracyRecord.from_dict(json.loads(r[0])) for r in rows]

    def __len__(self) -> int:
        with contextlib.closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM accuracy").fetchone()[0])

    def export_csv(self, path: str | Path) -> Path:
        """Every entry as one CSV row (metrics, recipe, recovery, allocation and balance as
        JSON columns)."""
        path = Path(path)
        cols = ["key", "source", "model", "model_sha256", "task", "metric", "block_shape", "ratio",
                "density", "compression", "fidelity", "dense", "pruned", "pruned_low",
                "pruned_high", "dense_low", "dense_high", "drop", "metrics",
                "dense_metrics", "recipe", "seed", "seconds", "dense_seconds", "dev_examples",
                "device", "precision", "recovery", "allocation", "balance", "masks_path",
                "dense_checkpoint", "created"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            for rec in self.records():
                row = rec.to_dict()
                row["drop"] = rec.drop
                for k in ("metrics", "dense_metrics", "recipe", "recovery", "allocation",
                          "balance"):
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


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write; moved onto `path` when the block succeeds and
    removed otherwise, so no reader ever sees a half-written cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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




def remember_model_sha256(model: str, sha256: str) -> None:
    """Record a checkpoint's sha256 for this process (a worker handed it by the main process
    then never needs the base checkpoint's files to key a measurement)."""
    _SHA_MEMO[str(model)] = str(sha256)
