"""The results store of a study: an optuna study whose trials are the evaluated design points.

What is modelled: every evaluated design point is one COMPLETE optuna trial holding its
parameters (`params`), its objective values (`values`), its constraint values (feasible <= 0) and
its full record (every points.csv column) as user attributes, keyed by `point_id` (a hash of the
point's parameters) and the accuracy fidelity it was evaluated at. The storage is an optuna
JournalStorage file in the output folder by default (append-only lines; SQLite with several
processes gives "database is locked"), or any optuna RDB URL. Only the main process writes it.

A trial is written in ONE storage operation (`add_trial` of a finished trial) so an interrupted
sweep never leaves half a point behind; a truncated last journal line (power loss, SIGKILL during
a write) is cut off when the store is opened. Interrupted NSGA-II trials left RUNNING by a killed
process are marked FAIL when the store is opened again.

What is ignored: concurrent writers from several machines on one journal file (use an RDB URL).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from codesign.accuracy.recipe import FIDELITIES

JOURNAL_NAME = "optuna.journal"
RECORD_ATTR = "record"
POINT_ATTR = "point_id"
FIDELITY_ATTR = "fidelity"
CONTEXT_ATTR = "context"
# Cheap to expensive; a point's row shows its most expensive evaluation.
FIDELITY_RANK = {"none": 0, **{f: i + 1 for i, f in enumerate(FIDELITIES)}}


class StoreError(ValueError):
    """The results folder cannot be used (one line: which file and what to do)."""


def _repair_journal(path: Path) -> None:
    """Cut a partial last line (written when a process died mid-write): optuna reads it as the
    end of the log but would refuse the file once more lines are appended after it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        f.truncate(data.rfind(b"\n") + 1)


def open_storage(out_dir: Path, url: str | None = None):
    """The optuna storage of a results folder: a journal file unless an RDB URL is given."""
    import optuna

    if url:
        if url.startswith("sqlite"):
            # one writer only (the main process), so SQLite is safe here; still give it a timeout
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.storages.RDBStorage(url)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JOURNAL_NAME
    _repair_journal(path)
    return optuna.storages.JournalStorage(
        JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


class ResultsStore:
    """Read and write the evaluated design points of one study (see the module docstring)."""

    def __init__(self, out_dir: str | Path, study_name: str, directions: Sequence[str], *,
                 storage: str | None = None, sampler=None):
        import optuna

        self.out_dir = Path(out_dir)
        self.storage = open_storage(self.out_dir, storage)
        directions = ["minimize" if d in ("min", "minimize") else "maximize" for d in directions]
        try:
            self.study = optuna.create_study(storage=self.storage, study_name=study_name,
                                             directions=directions, sampler=sampler,
                                             load_if_exists=True)
        except ValueError as exc:  # e.g. directions changed between runs
            raise StoreError(f"{self.out_dir}: the stored optuna study {study_name!r} does not "
                             f"match this study ({' '.join(str(exc).split())}); use another "
                             "--out folder") from None
        if list(self.study.directions) != [optuna.study.StudyDirection.MINIMIZE
                                           if d == "minimize" else
                                           optuna.study.StudyDirection.MAXIMIZE
                                           for d in directions]:
            raise StoreError(f"{self.out_dir}: the stored study has other objectives; use "
                             "another --out folder")

    # --- writing -----------------------------------------------------------------------------
    def add(self, record: dict[str, Any], *, params: dict[str, Any], distributions: dict,
            values: Sequence[float], constraints: dict[str, float], context: str) -> None:
        """Store one evaluated point as a single finished trial."""
        import optuna

        bad = _bad_values(values)
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if bad else optuna.trial.TrialState.COMPLETE,
            values=None if bad else [float(v) for v in values],
            params=params, distributions=distributions, user_attrs=_attrs(record, context),
            constraints={k: float(v) for k, v in constraints.items()})
        self.study.add_trial(trial)

    def tell(self, trial, record: dict[str, Any], *, values: Sequence[float],
             constraints: dict[str, float], context: str) -> None:
        """Finish an asked (NSGA-II) trial (an optuna.trial.Trial from `study.ask`): its named
        constraints (feasible <= 0) and attributes first, then its state in one tell."""
        import optuna

        for key, value in constraints.items():
            trial.set_constraint(key, float(value))
        for key, value in _attrs(record, context).items():
            trial.set_user_attr(key, value)
        if _bad_values(values):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, [float(v) for v in values])

    def fail(self, trial) -> None:
        """Finish an asked trial as failed (its evaluation failed)."""
        import optuna

        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def fail_running(self) -> int:
        """Mark trials left RUNNING by an interrupted process as FAIL; returns how many."""
        import optuna

        running = self.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.RUNNING,
                                                optuna.trial.TrialState.WAITING))
        for t in running:
            try:
                self.study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            except (RuntimeError, ValueError):
                pass
        return len(running)

    # --- reading -----------------------------------------------------------------------------
    def trials(self, context: str | None = None) -> list:
        import optuna

        out = []
        for t in self.study.get_trials(deepcopy=False,
                                       states=(optuna.trial.TrialState.COMPLETE,
                                               optuna.trial.TrialState.FAIL)):
            if RECORD_ATTR not in t.user_attrs:
                continue
            if context is not None and t.user_attrs.get(CONTEXT_ATTR) != context:
                continue
            out.append(t)
        return out

    def done(self, context: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """{(point_id, fidelity): record} of every stored evaluation (failed ones excluded,
        so a re-run retries them)."""
        import optuna

        out = {}
        for t in self.trials(context):
            if t.state != optuna.trial.TrialState.COMPLETE:
                continue
            out[(t.user_attrs[POINT_ATTR], t.user_attrs[FIDELITY_ATTR])] = \
                json.loads(t.user_attrs[RECORD_ATTR])
        return out

    def records(self, context: str | None = None, point_ids: Iterable[str] | None = None,
                below: str | None = None) -> list[dict[str, Any]]:
        """One record per point: its most expensive stored evaluation (cheaper than fidelity
        `below` if given), in a stable order."""
        best: dict[str, dict[str, Any]] = {}
        limit = FIDELITY_RANK.get(below, 99) if below else 99
        for (pid, fid), rec in self.done(context).items():
            if FIDELITY_RANK.get(fid, 0) >= limit:
                continue
            cur = best.get(pid)
            if cur is None or FIDELITY_RANK.get(fid, 0) > FIDELITY_RANK.get(
                    cur["accuracy_fidelity"], 0):
                best[pid] = rec
        if point_ids is not None:
            return [best[p] for p in point_ids if p in best]
        return [best[p] for p in sorted(best)]

    def n_trials(self, context: str | None = None) -> int:
        return len(self.trials(context))


def _attrs(record: dict[str, Any], context: str) -> dict[str, Any]:
    """The user attributes of a stored evaluation (the record as JSON, and its keys)."""
    return {POINT_ATTR: record["point_id"], FIDELITY_ATTR: record["accuracy_fidelity"],
            CONTEXT_ATTR: context, RECORD_ATTR: json.dumps(_jsonable(record))}


def _bad_values(values: Sequence[float]) -> bool:
    return any(v is None or not math.isfinite(v) for v in values)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """A record as JSON-ready values: numpy scalars as Python ones, NaN as null. Infinities are
    kept (JSON `Infinity`, read back as float inf) so a record round-trips through the store
    with numeric columns intact."""
    out = {}
    for key, value in record.items():
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        out[key] = value
    return out


def records_frame(records: list[dict[str, Any]]):
    """The points table (pandas DataFrame) from records."""
    import pandas as pd

    df = pd.DataFrame.from_records(records)
    for col in df.columns:
        if df[col].dtype == object:
            # None -> NaN for numeric columns written as JSON null
            try:
                converted = pd.to_numeric(df[col])
            except (ValueError, TypeError):
                continue
            if df[col].map(lambda v: v is None or isinstance(v, (int, float))).all() and \
                    not df[col].map(lambda v: isinstance(v, bool)).any():
                df[col] = converted
    return df


def export_points(df, out_dir: str | Path) -> list[Path]:
    """Write points.csv (and points.parquet when pyarrow is importable)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "points.csv"]
    tmp = paths[0].with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(paths[0])  # atomic: a killed export never leaves half a table
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return paths
    pq = out_dir / "points.parquet"
    df.to_parquet(pq, index=False)
    paths.append(pq)
    return paths
