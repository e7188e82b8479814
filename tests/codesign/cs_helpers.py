"""Shared helpers for the codesign tests (imported by name: pytest puts this folder on sys.path):
a one-point study file, the tiny study cut for the worker-measurement tests and its run in the
main process, and a slice of the real MiniLM."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"

# One magnitude point on zcu102 16x16, no accuracy: `hardware` lines go under `hardware:`.
SMALL_STUDY = """\
name: {name}
model: {{name: minilm-l6, seq_len: 32, batch: 1}}
tasks: [sst2]
pruning: {{method: magnitude, block_shapes: [16x16], prune_ratios: [0.5]}}
accuracy: {{measure: false}}
hardware:
  board: zcu102
  pe_array: [16x16]
{hardware}objectives: [{{latency_ms: min}}]
constraints: {{fits_board: false}}
"""

# per-run fields of an accuracy-cache record: wall clock, and the paths into each run's own cache
PER_RUN = ("created", "seconds", "dense_seconds", "masks_path", "dense_checkpoint")


def small_study_space(tmp_path: Path, name: str, hardware: str = ""):
    """The DesignSpace of SMALL_STUDY named `name` (written to tmp_path/NAME.yaml), with
    `hardware` (indented YAML lines, each ending in a newline) added to its hardware section."""
    from codesign.study import load_study
    from codesign.sweep import DesignSpace

    path = tmp_path / f"{name}.yaml"
    path.write_text(SMALL_STUDY.format(name=name, hardware=hardware))
    return DesignSpace.of(load_study(path, check_fit=False))


def tiny_cut(recipe: dict, *, accuracy: dict | None = None, hardware: dict | None = None):
    """studies/tiny.yaml cut to compression 2 (2 block shapes x 1 ratio) on a 16x16 array, with
    the accuracy `recipe` and further accuracy / hardware fields."""
    from codesign.study import load_study

    base = load_study(TINY)
    return base.model_copy(update={
        "pruning": base.pruning.model_copy(update={"compression": [2.0]}),
        "accuracy": base.accuracy.model_copy(update={"recipe": recipe, **(accuracy or {})}),
        "hardware": base.hardware.model_copy(update={"pe_array": ["16x16"],
                                                     **(hardware or {})})})


def main_process_run(study, base: Path, *, measure=None, progress=None):
    """`study` measured in the main process at 1 thread into base/cache (codesign.accuracy's
    `measure` replaced by `measure` when given; `progress`, a sweep Progress); (the sweep
    result, the cache folder)."""
    import torch

    import codesign.accuracy
    from codesign.accuracy import AccuracyCache
    from codesign.sweep import run_sweep

    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODESIGN_THREADS", "1")
        if measure is not None:
            mp.setattr(codesign.accuracy, "measure", measure)
        torch.set_num_threads(1)
        try:
            result = run_sweep(study, base / "out", cache=AccuracyCache(base / "cache"),
                               write=False, measure_on="main", progress=progress)
        finally:
            torch.set_num_threads(previous)
    return result, base / "cache"


def cache_with_dense(local_cache: Path, dest: Path):
    """A fresh cache at `dest` holding only `local_cache`'s dense checkpoint."""
    from codesign.accuracy import AccuracyCache

    shutil.copytree(local_cache / "dense", dest / "dense")
    return AccuracyCache(dest)


def cache_records(cache_dir: Path) -> dict[str, dict]:
    """The accuracy cache's records by key, without their PER_RUN fields."""
    with sqlite3.connect(cache_dir / "accuracy.sqlite") as conn:
        rows = [json.loads(text) for (text,) in conn.execute("SELECT record FROM accuracy")]
    return {r["key"]: {k: v for k, v in r.items() if k not in PER_RUN} for r in rows}


def minilm_slice(layers: int, task: str = "sst2"):
    """The real MiniLM-L6 for `task` cut to its first `layers` encoder layers, and a copy of
    its state dict (to restore it between tests)."""
    from codesign.checkpoints import load_model

    loaded = load_model("minilm-l6", task=task)
    loaded.model.bert.encoder.layer = loaded.model.bert.encoder.layer[:layers]
    loaded.model.config.num_hidden_layers = layers
    return loaded, {k: v.clone() for k, v in loaded.model.state_dict().items()}


def spy_prune_checkpoint(monkeypatch) -> dict:
    """Replace `codesign.pruning.prune_checkpoint` (what `codesign prune` calls) by a spy that
    records its keyword arguments in the returned dict and stops with "stop here"."""
    import codesign.pruning as pruning

    seen: dict = {}

    def fake_prune_checkpoint(**kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(pruning, "prune_checkpoint", fake_prune_checkpoint)
    return seen


def assert_rerun_from_store(study, run, cache, columns: list[str]) -> None:
    """A second sweep into `run`'s folder computes nothing and gives the same `columns`."""
    import pandas as pd

    from codesign.sweep import run_sweep

    again = run_sweep(study, run.out_dir, workers=1, cache=cache)
    assert again.n_new == 0 and again.n_accuracy_measured == 0
    pd.testing.assert_frame_equal(
        again.points[columns].sort_values("point_id").reset_index(drop=True),
        run.points[columns].sort_values("point_id").reset_index(drop=True))


def study_figure(run, study, gid: str):
    """(points of `run`'s points.csv, its pareto figure, how many points the collections whose
    gid starts with `gid` draw, the legend's texts)."""
    from codesign.plots import load_points, pareto_figure

    assert (run.out_dir / "pareto.png").stat().st_size > 0
    df = load_points(run.out_dir / "points.csv")
    fig = pareto_figure(df, objectives=study.objective_pairs)
    drawn = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections
                if str(c.get_gid() or "").startswith(gid))
    return df, fig, drawn, [t.get_text() for leg in fig.legends for t in leg.get_texts()]
