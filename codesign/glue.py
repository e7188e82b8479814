"""GLUE task files (official TSV layout) and the official GLUE metrics.

What is modelled: the six GLUE tasks carried offline (SST-2, CoLA, MRPC, STS-B, RTE, QNLI) in the
layout the GLUE download script produces, read exactly as the official readers do (split on
newlines and tabs, no CSV quoting, since sentences contain quotes; CoLA has no header; MRPC files
start with a UTF-8 byte-order mark; RTE/QNLI labels are strings; STS-B labels are float scores),
and the official metrics (accuracy; F1 + accuracy for MRPC; Matthews correlation for CoLA;
Pearson + Spearman for STS-B) computed with scikit-learn / scipy, and the dev-set uncertainty of
a metric: `bootstrap_interval` (percentile bootstrap over the dev examples, vectorised in numpy).

What is ignored: test splits (no labels), MNLI/QQP/WNLI (not carried), and any online fallback:
with no folder given the reader raises GlueDataError saying how to point at one. To make such a
folder from the Hugging Face copy of GLUE, see codesign.glue_fetch (`codesign glue fetch DIR`).
`check_glue_dir` checks a folder holds every file a study will read, before any training.

No torch import here: the CLI imports this module at top level.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GLUE_DIR_ENV = "CODESIGN_GLUE_DIR"


class GlueDataError(ValueError):
    """A GLUE folder or file is missing or malformed (one line: which file, and the fix)."""


@dataclass(frozen=True)
class TaskSpec:
    """One GLUE task: where its files are and how they are laid out.

    `label_col`/`text_cols` index the tab-separated columns; a negative index counts from the end.
    `label_names` maps string labels to class ids (None: labels are already numbers).
    """

    name: str
    folder: str
    num_labels: int  # 1 = regression (STS-B)
    metrics: tuple[str, ...]
    headline: str
    has_header: bool
    text_cols: tuple[int, ...]
    label_col: int
    label_names: tuple[str, ...] | None = None
    splits: tuple[str, ...] = ("train", "dev")

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


# Column layouts checked against the official GLUE files (and the official GLUE readers of
# transformers' glue processors). Entailment tasks map labels in the HF GLUE order
# (entailment = 0, not_entailment = 1).
TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", "SST-2", 2, ("accuracy",), "accuracy", True, (0,), 1),
    "cola": TaskSpec("cola", "CoLA", 2, ("matthews_corr",), "matthews_corr", False, (3,), 1),
    "mrpc": TaskSpec("mrpc", "MRPC", 2, ("f1", "accuracy"), "f1", True, (3, 4), 0),
    "stsb": TaskSpec("stsb", "STS-B", 1, ("pearson", "spearmanr"), "pearson", True, (7, 8), -1),
    "rte": TaskSpec("rte", "RTE", 2, ("accuracy",), "accuracy", True, (1, 2), -1,
                    ("entailment", "not_entailment")),
    "qnli": TaskSpec("qnli", "QNLI", 2, ("accuracy",), "accuracy", True, (1, 2), -1,
                     ("entailment", "not_entailment"), splits=("dev",)),
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "cola": "cola", "mrpc": "mrpc", "rte": "rte",
            "qnli": "qnli", "sst": "sst2"}


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The TaskSpec for a task name (case-insensitive; "SST-2", "sts-b" and the like accepted)."""
    if isinstance(name, TaskSpec):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise GlueDataError(f"unknown GLUE task {name!r}: choose one of {', '.join(sorted(TASKS))}")
    return TASKS[key]


def headline_metric(task: str | TaskSpec) -> str:
    """The metric a study reports for a task (accuracy, f1, matthews_corr or pearson)."""
    return get_task(task).headline


def resolve_glue_dir(explicit: str | Path | None = None) -> Path:
    """The GLUE folder: `explicit` (study key / --glue-dir), else $CODESIGN_GLUE_DIR, else error."""
    if explicit is not None and str(explicit) != "":
        path, origin = Path(explicit).expanduser(), "the given GLUE folder"
    elif os.environ.get(GLUE_DIR_ENV):
        path, origin = Path(os.environ[GLUE_DIR_ENV]).expanduser(), f"${GLUE_DIR_ENV}"
    else:
        raise GlueDataError(
            "no GLUE folder given: pass --glue-dir DIR, set the study key 'glue_dir', or export "
            f"{GLUE_DIR_ENV}=DIR (a folder with SST-2/, CoLA/, MRPC/, ... in the official TSV layout;"
            " `codesign glue fetch DIR` writes one when online)")
    if not path.is_dir():
        raise GlueDataError(f"{origin} {path} is not a folder: point --glue-dir or "
                            f"{GLUE_DIR_ENV} at the folder holding SST-2/, CoLA/, MRPC/, ...")
    return path


@dataclass(frozen=True)
class GlueSplit:
    """One split of one task, as plain lists and a label array."""

    task: str
    split: str
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray  # int64 class ids, or float32 scores for STS-B
    num_labels: int

    def __len__(self) -> int:
        return len(self.text_a)


def split_path(root: Path, task: str | TaskSpec, split: str) -> Path:
    """`root/<folder>/<split>.tsv` if that file exists, else a one-line GlueDataError naming the
    folder, the missing file and the fixes."""
    spec = get_task(task)
    if split not in ("train", "dev"):
        raise GlueDataError(f"split {split!r} of {spec.name}: use 'train' or 'dev' "
                            "(test splits carry no labels)")
    if split not in spec.splits:
        raise GlueDataError(f"{spec.name} has no {split} split here (only {', '.join(spec.splits)})")
    path = root / spec.folder / f"{split}.tsv"
    if not path.is_file():
        raise GlueDataError(
            f"GLUE folder {root} has no {spec.folder}/{split}.tsv: set ${GLUE_DIR_ENV} or the "
            f"study's glue_dir to a folder that holds it, or run `codesign glue fetch {root}`")
    return path


def check_glue_dir(glue_dir: str | Path | None, tasks: Iterable[str | TaskSpec],
                   splits: Iterable[str] = ("train", "dev")) -> Path:
    """The GLUE folder (as `resolve_glue_dir` finds it), once every task's split files exist.

    For a study's validation: checks that the files are there, not their content (read errors
    still surface when a split is loaded). Raises the first missing file's one-line GlueDataError.
    """
    root = resolve_glue_dir(glue_dir)
    for task in tasks:
        for split in splits:
            split_path(root, task, split)
    return root


def _read_rows(path: Path) -> list[list[str]]:
    # utf-8-sig drops MRPC's byte-order mark and is harmless elsewhere; no csv quoting because
    # sentences contain unbalanced quotes (MRPC: `"The foodservice pie business ...`).
    text = path.read_text(encoding="utf-8-sig")
    return [line.split("\t") for line in text.splitlines() if line.strip() != ""]


def load_split(task: str | TaskSpec, split: str = "train", *,
               glue_dir: str | Path | None = None, limit: int | None = None, seed: int = 0,
               exclude: tuple[int, int] | None = None) -> GlueSplit:
    """Read one split; `limit` keeps a seeded random subset (in file order) for small runs.

    `exclude` = (limit, seed) of another subset of the same split: its rows are left out before
    this one is drawn, so the two are disjoint (a held-out slice beside a training sample)."""
    spec = get_task(task)
    path = split_path(resolve_glue_dir(glue_dir), spec, split)
    rows = _read_rows(path)
    if spec.has_header:
        rows = rows[1:]
    last_text = max(spec.text_cols) + 1
    # a label counted from the end must sit after the text columns
    need = max(last_text, spec.label_col + 1) if spec.label_col >= 0 else last_text - spec.label_col
    text_a: list[str] = []
    text_b: list[str] = []
    raw_labels: list[str] = []
    for lineno, cols in enumerate(rows, start=2 if spec.has_header else 1):
        if len(cols) < need:
            raise GlueDataError(f"{path}:{lineno}: {len(cols)} tab-separated columns, expected at "
                                f"least {need} for {spec.name}: is this the official GLUE layout?")
        text_a.append(cols[spec.text_cols[0]].strip())
        if len(spec.text_cols) > 1:
            text_b.append(cols[spec.text_cols[1]].strip())
        raw_labels.append(cols[spec.label_col].strip())
    labels = _parse_labels(spec, raw_labels, path)
    pool = np.arange(len(text_a))
    if exclude is not None:
        pool = np.setdiff1d(pool, _sample(pool, exclude[0], exclude[1], spec.name, split))
    if exclude is not None or (limit is not None and limit < len(text_a)):
        keep = _sample(pool, limit, seed, spec.name, split)
        text_a = [text_a[i] for i in keep]
        text_b = [text_b[i] for i in keep] if text_b else text_b
        labels = labels[keep]
    return GlueSplit(task=spec.name, split=split, text_a=text_a,
                     text_b=text_b if len(spec.text_cols) > 1 else None,
                     labels=labels, num_labels=spec.num_labels)


def _sample(pool: np.ndarray, limit: int | None, seed: int, task: str, split: str) -> np.ndarray:
    """`limit` of the row numbers in `pool`, drawn with `seed`, in file order (all of them when
    `limit` is None or covers the pool)."""
    if limit is None or limit >= len(pool):
        return pool
    if limit <= 0:
        raise GlueDataError(f"limit={limit} for {task} {split}: use a positive count or None")
    return np.sort(np.random.default_rng(seed).choice(pool, size=limit, replace=False))


def _parse_labels(spec: TaskSpec, raw: list[str], path: Path) -> np.ndarray:
    try:
        if spec.is_regression:
            return np.asarray([float(x) for x in raw], dtype=np.float32)
        if spec.label_names is not None:
            index = {name: i for i, name in enumerate(spec.label_names)}
            return np.asarray([index[x] for x in raw], dtype=np.int64)
        out = np.asarray([int(x) for x in raw], dtype=np.int64)
    except (KeyError, ValueError) as err:
        raise GlueDataError(f"{path}: label {err} is not a valid {spec.name} label: "
                            "is this the official GLUE layout?") from None
    if out.size and (out.min() < 0 or out.max() >= spec.num_labels):
        raise GlueDataError(f"{path}: labels outside 0..{spec.num_labels - 1}")
    return out


def compute_metrics(task: str | TaskSpec, predictions: np.ndarray,
                    labels: np.ndarray) -> dict[str, float]:
    """Official GLUE metrics. `predictions` are class ids (or float scores for STS-B).

    Degenerate inputs follow scikit-learn/scipy conventions except that a constant prediction on
    STS-B (undefined correlation) scores 0.0 rather than NaN, so a collapsed model ranks last.
    """
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    spec = get_task(task)
    preds = np.asarray(predictions)
    gold = np.asarray(labels)
    if preds.shape != gold.shape:
        raise ValueError(f"{spec.name}: predictions shape {preds.shape} != labels shape {gold.shape}")
    if preds.size == 0:
        raise ValueError(f"{spec.name}: no predictions to score")
    if spec.is_regression:
        from scipy.stats import pearsonr, spearmanr

        p = preds.astype(np.float64)
        g = gold.astype(np.float64)
        if np.ptp(p) == 0 or np.ptp(g) == 0:
            return {"pearson": 0.0, "spearmanr": 0.0}
        return {"pearson": float(pearsonr(p, g)[0]), "spearmanr": float(spearmanr(p, g)[0])}
    p = preds.astype(np.int64)
    g = gold.astype(np.int64)
    if spec.name == "cola":
        return {"matthews_corr": float(matthews_corrcoef(g, p))}
    if spec.name == "mrpc":
        return {"f1": float(f1_score(g, p, zero_division=0.0)),
                "accuracy": float(accuracy_score(g, p))}
    return {"accuracy": float(accuracy_score(g, p))}


# --- uncertainty of a dev-set metric ------------------------------------------------------------

def interval_keys(metric: str) -> tuple[str, str]:
    """The keys under which a metrics dict carries the bootstrap interval of `metric`
    ("accuracy" -> ("accuracy_low", "accuracy_high")); see codesign.accuracy.dense.evaluate_dev."""
    return f"{metric}_low", f"{metric}_high"


# resamples x examples gathered per chunk (bounds memory: ~32 MB of float64 at most)
_BOOT_CHUNK_ELEMENTS = 4_000_000


def _binary_counts(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tp, tn, fp, fn) per row of (resamples, n) 0/1 arrays, as float64."""
    tp = (p & g).sum(axis=1, dtype=np.float64)
    fp = (p & ~g).sum(axis=1, dtype=np.float64)
    fn = (~p & g).sum(axis=1, dtype=np.float64)
    return tp, p.shape[1] - tp - fp - fn, fp, fn


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r per row; 0.0 where a row is constant (compute_metrics' convention)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    num = (xc * yc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def metric_replicates(task: str | TaskSpec, predictions: np.ndarray, labels: np.ndarray,
                      index: np.ndarray, *, metric: str | None = None) -> np.ndarray:
    """The metric of each resample: row r of `index` (resamples, n) lists the dev examples of
    resample r. Each value equals compute_metrics on that resample (same degenerate-case
    conventions), computed for all rows at once with numpy."""
    spec = get_task(task)
    metric = metric or spec.headline
    if metric not in spec.metrics:
        raise GlueDataError(f"metric {metric!r} of {spec.name}: choose one of "
                            f"{', '.join(spec.metrics)}")
    if spec.is_regression:
        x = np.asarray(predictions, dtype=np.float64)[index]
        y = np.asarray(labels, dtype=np.float64)[index]
        if metric == "spearmanr":
            from scipy.stats import rankdata

            x, y = rankdata(x, axis=1), rankdata(y, axis=1)
        return _pearson_rows(x, y)
    p = np.asarray(predictions).astype(np.int64)[index]
    g = np.asarray(labels).astype(np.int64)[index]
    if metric == "accuracy":
        return (p == g).mean(axis=1, dtype=np.float64)
    tp, tn, fp, fn = _binary_counts(p == 1, g == 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "f1":  # sklearn: zero_division=0.0 when there is no positive at all
            den = 2 * tp + fp + fn
            return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # matthews_corr
        return np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1.0), 0.0)


def bootstrap_interval(task: str | TaskSpec, predictions: np.ndarray, labels: np.ndarray, *,
                       n_resamples: int = 1000, level: float = 0.95, seed: int = 0,
                       metric: str | None = None) -> tuple[float, float]:
    """(low, high): the percentile bootstrap interval of the task's headline metric (or
    `metric`) over the dev set.

    What is modelled: the sampling noise of a finite dev set. The dev examples are resampled with
    replacement `n_resamples` times (numpy Generator seeded by `seed`, so the interval is
    reproducible), the metric is computed on each resample exactly as compute_metrics would, and
    the (1 - level)/2 and (1 + level)/2 quantiles are returned. What is ignored: the noise of
    training (seeds, sampled training subsets), which a dev-set bootstrap cannot see, and the
    correlation between two models scored on the same dev set (a paired comparison needs both
    prediction vectors).
    """
    spec = get_task(task)
    preds = np.asarray(predictions)
    gold = np.asarray(labels)
    if preds.shape != gold.shape or preds.ndim != 1 or preds.size == 0:
        raise ValueError(f"{spec.name}: predictions shape {preds.shape} and labels shape "
                         f"{gold.shape} must be equal, one-dimensional and non-empty")
    if not 0.0 < level < 1.0 or n_resamples < 1:
        raise ValueError(f"bootstrap level {level} must be in (0, 1) and n_resamples "
                         f"{n_resamples} >= 1")
    rng = np.random.default_rng(seed)
    n = preds.size
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    stats = [metric_replicates(spec, preds, gold,
                               rng.integers(0, n, size=(min(chunk, n_resamples - start), n)),
                               metric=metric)
             for start in range(0, n_resamples, chunk)]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.concatenate(stats), [tail, 1.0 - tail])
    return float(low), float(high)
