"""Studies with PE-balanced blocks (pruning.balanced, issue 12): studies/balanced_tiny.yaml
(unbalanced and balanced calibrated 16x16 points at 2x on two ZCU102 arrays 32 PE columns wide
under compaction, every configuration promoted to masked retraining; quick recipe, real SST-2
rows) runs end to end on MiniLM-L6 cut to its first two encoder layers (saved as a checkpoint
folder, so a measurement takes seconds). The balanced points' masks keep the same count per
balance group at both fidelities and simulate at a load imbalance near 1.0, the two arrays share one
balanced measurement per fidelity, unbalanced points keep their ids and keys, the table and
the plot label the points, a re-run is served from the store; the schema's one-line errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cs_helpers import assert_rerun_from_store, study_figure

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "balanced_tiny.yaml"
WIDTH = 32  # the PE columns of both arrays of the study (16x32 and 32x32)


@pytest.fixture(scope="module")
def minilm2_dir(tmp_path_factory):
    """MiniLM-L6 cut to its first two encoder layers, saved as a checkpoint folder."""
    from transformers import AutoModel, AutoTokenizer

    from codesign.checkpoints import builtin_path

    src = builtin_path("minilm-l6")
    model = AutoModel.from_pretrained(src)
    model.encoder.layer = model.encoder.layer[:2]
    model.config.num_hidden_layers = 2
    out = tmp_path_factory.mktemp("minilm2")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return str(out)


def _data(model: str | None = None, **pruning) -> dict:
    """balanced_tiny.yaml as data, its pruning keys replaced (None removes a key)."""
    data = yaml.safe_load(STUDY.read_text())
    data["pruning"] = {k: v for k, v in {**data["pruning"], **pruning}.items() if v is not None}
    if model is not None:
        data["model"]["name"] = model
    return data


def _variant(model: str | None = None, **pruning):
    from codesign.study import Study

    return Study.model_validate(_data(model, **pruning))


@pytest.fixture(scope="module")
def bal_study(minilm2_dir, glue_dir):
    return _variant(minilm2_dir)


@pytest.fixture(scope="module")
def bal_run(bal_study, cache, tmp_path_factory):
    from codesign.sweep import run_sweep

    return run_sweep(bal_study, tmp_path_factory.mktemp("balanced"), workers=1, cache=cache)


def _simulate(study, row, masks):
    """The report of `masks` simulated on the accelerator of a points.csv row."""
    import hwmodels

    from codesign.study import resolve
    from codesign.sweep import DesignSpace
    from codesign.workload import encoder_workload, model_config

    point = DesignSpace.of(study).point_of_record(row.to_dict())
    acc = resolve(study, point.accelerator).accelerator
    wl = encoder_workload(model_config(study.model.name), study.model.seq_len,
                          study.model.batch, mask_names=list(masks))
    return hwmodels.simulate(wl, acc, masks), acc


def _assert_balanced(masks, ratio: float) -> None:
    """The model keeps (1 - ratio) of its blocks (the Fisher ranking of the default recipe is
    global: each matrix its own count), the same count in every block row of each balance
    group of a 32-column array, up to the one extra block of the remainder rule."""
    from codesign.pruning.balance import PEBalance

    total = sum(np.asarray(m.grid).size for m in masks.values())
    assert sum(int(np.asarray(m.grid).sum()) for m in masks.values()) == \
        total - math.ceil(ratio * total - 1e-9)
    for name, m in masks.items():
        grid = np.asarray(m.grid, bool)
        groups = PEBalance(WIDTH).groups(m.matrix_shape, m.block_shape)
        assert max(hi - lo for lo, hi in groups) == 2  # 16-row blocks, 32 columns: 2 lanes
        for lo, hi in groups:  # the remainder rule: lanes differ by one block at most
            counts = grid[lo:hi].sum(axis=1)
            assert counts.max() - counts.min() <= 1, (name, lo, hi)


def test_points_are_labelled_and_unbalanced_ids_kept(bal_run, bal_study):
    from codesign.sweep import DesignSpace

    df = bal_run.points
    assert bal_run.n_failed == 0 and len(df) == 6 and df["point_id"].is_unique
    dense = df["block_shape"] == "dense"
    assert df.loc[dense, "balanced"].tolist() == [False, False]
    assert sorted(df.loc[~dense, "balanced"].tolist()) == [False, False, True, True]
    # every configuration was promoted: the rows show the retrain evaluation
    assert set(df.loc[~dense, "accuracy_fidelity"]) == {"retrain"}
    # dense, 1 calibrated + 1 retrain per kind (the balanced ones shared by both arrays)
    assert bal_run.n_accuracy_measured == 5
    # an unbalanced point's id does not depend on whether the study also has balanced points
    plain = DesignSpace.of(_variant(bal_study.model.name, balanced=None)).points()
    assert {p.point_id for p in plain} == set(df.loc[~df["balanced"], "point_id"])
    assert all(p.balanced is None for p in plain) and "balanced" not in plain[-1].params()
    # the CSV column reads back as booleans
    csv = pd.read_csv(bal_run.out_dir / "points.csv")
    assert csv["balanced"].dtype == bool
    assert csv.set_index("point_id")["balanced"].to_dict() == \
        df.set_index("point_id")["balanced"].to_dict()


def test_balanced_masks_simulate_near_imbalance_one(bal_run, bal_study, cache):
    """The hardware side simulates each point's own masks: balanced ones at a load imbalance
    near 1.0 on their array (the remainder rule; unbalanced ones far above it), the row's
    latency reproduced; both arrays of one width read one balanced mask file."""
    from codesign.masks import load_masks

    df = bal_run.points
    keys = {}
    for _, row in df[df["block_shape"] != "dense"].iterrows():
        prov = json.loads(row["provenance"])["accuracy"]
        loaded = load_masks(prov["masks_path"])
        report, acc = _simulate(bal_study, row, dict(loaded.masks))
        assert acc.pe_array.cols == WIDTH
        assert report.latency_ms == pytest.approx(row["latency_ms"], rel=1e-12)
        if row["balanced"]:
            _assert_balanced(loaded.masks, row["prune_ratio"])
            assert 1.0 <= report.load_imbalance < 1.1
            assert prov["balance"] == {"pe_columns": WIDTH}
            meta = loaded.metadata["balance"]
            assert (json.loads(meta) if isinstance(meta, str) else meta) == prov["balance"]
            assert f"-pe{WIDTH}-" in Path(prov["masks_path"]).name
        else:
            assert report.load_imbalance > 1.2 and "balance" not in prov
        keys.setdefault(bool(row["balanced"]), set()).add(prov["key"])
        assert cache.get(prov["key"]).pruned == pytest.approx(row["accuracy"])
    assert len(keys[True]) == 1 and len(keys[False]) == 1  # shared by the two arrays
    assert keys[True] != keys[False]
    # at equal kept blocks the balanced masks are faster under compaction
    lat = df[df["block_shape"] != "dense"].groupby(["array", "balanced"])["latency_ms"].first()
    for array in ("16x32", "32x32"):
        assert lat[(array, True)] < lat[(array, False)]


def test_both_fidelities_measure_balanced_masks(bal_run, bal_study, cache):
    """The calibrated first stage and the retrain stage each measured the balanced masks once,
    keyed by the balance geometry; a measurement with the same balance is a cache hit."""
    from codesign.accuracy import Recipe, measure
    from codesign.accuracy.cache import balance_fields, model_sha256, record_key
    from codesign.pruning.balance import PEBalance

    model = bal_study.model.name
    balanced = [r for r in cache.records() if r.model == model and r.balance]
    assert sorted(r.fidelity for r in balanced) == ["calibrated", "retrain"]
    for rec in balanced:
        assert rec.balance == {"pe_columns": WIDTH} and rec.ratio == 0.5
        from codesign.masks import load_masks

        _assert_balanced(load_masks(rec.masks_path).masks, rec.ratio)
    recipe = Recipe.from_spec(bal_study.accuracy.recipe)
    hit = measure(model, "sst2", "16x16", 0.5, "retrain", recipe, cache=cache,
                  balance=PEBalance(WIDTH))
    assert hit.from_cache and hit.balance == {"pe_columns": WIDTH}
    sha = model_sha256(model)
    key = record_key(sha, "sst2", "16x16", 0.5, "retrain", recipe,
                     balance=balance_fields(PEBalance(WIDTH)))
    assert hit.key == key
    # the key holds the width, not the accelerator; unbalanced keys are those of before
    other = record_key(sha, "sst2", "16x16", 0.5, "retrain", recipe,
                       balance=balance_fields(PEBalance(16)))
    plain = record_key(sha, "sst2", "16x16", 0.5, "retrain", recipe)
    assert len({key, other, plain}) == 3
    assert record_key(sha, "sst2", "16x16", 0.5, "retrain", recipe, "fp32", None) == plain
    assert record_key(sha, "sst2", "16x16", 0.0, "retrain", recipe,
                      balance={"pe_columns": WIDTH}) == \
        record_key(sha, "sst2", None, 0.0, "oneshot", recipe)  # ratio 0: the dense model


def test_workers_and_masks_only_take_the_balance(bal_run, bal_study, cache):
    """A worker's job carries the PE columns and measures balanced masks; a cached balanced
    point needs no worker; the hardware-only masks (accuracy.measure false) are balanced too
    and are those a balanced oneshot measurement prunes."""
    from codesign.accuracy import oneshot_masks
    from codesign.masks import load_masks
    from codesign.pruning.balance import PEBalance
    from codesign.sweep import AccuracyProvider
    from hwmodels import BlockShape

    provider = AccuracyProvider(bal_study, cache)
    block = BlockShape.parse("16x16")
    job, _, _ = provider.shipment("sst2", block, 0.5, "calibrated", precision="fp32",
                                  pe_columns=WIDTH)
    assert job.pe_columns == WIDTH
    plain_job, _, _ = provider.shipment("sst2", block, 0.5, "calibrated", precision="fp32")
    assert plain_job.pe_columns is None
    ready = provider.ready("sst2", block, 0.5, "calibrated", "fp32", pe_columns=WIDTH)
    assert ready is not None and ready.provenance["balance"] == {"pe_columns": WIDTH}
    assert provider.measured == 0
    path = oneshot_masks(bal_study.model.name, "sst2", "16x16", 0.5,
                         provider.recipe, cache=cache, balance=PEBalance(WIDTH))
    loaded = load_masks(path)
    _assert_balanced(loaded.masks, 0.5)
    plain = oneshot_masks(bal_study.model.name, "sst2", "16x16", 0.5, provider.recipe,
                          cache=cache)
    assert path != plain and "balance" not in load_masks(plain).metadata
    # a worker measures the job's balanced masks; the main process imports them under the key
    # of a local measurement
    from codesign.accuracy.cache import balance_fields, model_sha256, record_key
    from codesign.sweep import remote

    job, dense, files = provider.shipment("sst2", block, 0.5, "oneshot", precision="fp32",
                                          pe_columns=WIDTH)
    got = remote.run_measure_job(job, remote.files_on_disk(files["cache_root"],
                                                           files["cache_rels"]),
                                 remote.files_on_disk(files["glue_root"], files["glue_rels"]))
    acc = provider.accept("sst2", block, 0.5, "oneshot", got, dense)
    assert acc.provenance["key"] == record_key(
        model_sha256(bal_study.model.name), "sst2", "16x16", 0.5, "oneshot", provider.recipe,
        balance=balance_fields(PEBalance(WIDTH)))
    imported = load_masks(acc.masks_path)
    assert {n: m.grid.tolist() for n, m in imported.masks.items()} == \
        {n: m.grid.tolist() for n, m in loaded.masks.items()}  # the same one-shot masks
    assert provider.ready("sst2", block, 0.5, "oneshot", "fp32", pe_columns=WIDTH) is acc


def test_rerun_is_served_from_the_store(bal_run, bal_study, cache):
    assert_rerun_from_store(bal_study, bal_run, cache,
                            ["point_id", "balanced", "prune_ratio", "latency_ms", "accuracy",
                             "accuracy_fidelity", "pareto"])


def test_pareto_plot_marks_balanced_points(bal_run, bal_study):
    from codesign.plots import BALANCED_GID, pareto_figure

    df, _, drawn, texts = study_figure(bal_run, bal_study, BALANCED_GID)
    assert drawn == 2 * 2  # 2 points on 2 panels
    assert any("PE-balanced" in t for t in texts)
    unmarked = pareto_figure(df.drop(columns=["balanced"]), objectives=bal_study.objective_pairs)
    assert not [c for ax in unmarked.axes for c in ax.collections
                if str(c.get_gid() or "").startswith(BALANCED_GID)]


def _error(tmp_path: Path, data: dict) -> str:
    from codesign.study import StudyError, load_study

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StudyError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_schema_values_and_errors(tmp_path, glue_dir):
    study = _variant(balanced=True)
    assert study.pruning.balanced is True and study.pruning.balance_choices == [True]
    assert _variant(balanced=[True, False]).pruning.balance_choices == [False, True]
    plain = _variant(balanced=None)
    assert plain.pruning.balance_choices == [False] and not plain.pruning.balanced_points
    assert plain.to_plain()["pruning"]["balanced"] is False  # study.yaml as before
    text = _error(tmp_path, _data(balanced="yes"))
    assert "pruning.balanced" in text and "allowed: true, false" in text
    assert "each value once" in _error(tmp_path, _data(balanced=[True, True]))
    text = _error(tmp_path, _data(allocation=["uniform", "latency-aware"],
                                  speedup_targets=[2]))
    assert "pruning" in text and "balanced: false" in text
    rgl = _data(method="rgl")
    rgl["accuracy"]["stages"] = [{"fidelity": "oneshot"}, {"fidelity": "rgl", "promote": "all"}]
    text = _error(tmp_path, rgl)
    assert "fidelity rgl" in text and "set balanced: false" in text
    rgl["pruning"]["balanced"] = False
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(rgl, sort_keys=False))
    from codesign.study import load_study

    assert load_study(path).pruning.method == "rgl"  # unbalanced rgl stays allowed


def test_space_search_and_dry_run(glue_dir):
    """Ids, the NSGA-II parameters, the dry run's line and its measurement count."""
    from codesign.cli.study import _allocation_text
    from codesign.sweep import DesignSpace, describe, distributions
    from codesign.sweep.search import point_of_params

    study = _variant()
    space = DesignSpace.of(study)
    points = space.points()
    sparse = [p for p in points if p.block is not None]
    assert [p.balanced for p in sparse] == [False, False, True, True]
    assert sparse[0].accuracy_key == ("sst2", "16x16", 0.5)
    assert sparse[2].accuracy_key == ("sst2", "16x16", 0.5, "balanced")
    for p in points:  # a record maps back to its point
        assert space.point_of_record(p.params()).point_id == p.point_id
    assert list(distributions(study)["balanced"].choices) == [False, True]
    assert "balanced" not in distributions(_variant(balanced=None))
    params = {**sparse[2].params(), "balanced": True}
    assert point_of_params(space, params).point_id == sparse[2].point_id
    params["balanced"] = False
    assert point_of_params(space, params).point_id == sparse[0].point_id
    only = DesignSpace.of(_variant(balanced=True))  # true alone balances whatever is sampled
    assert point_of_params(only, params).balanced is True
    dense = {**params, "block_shape": "dense", "prune_ratio": 0.0, "balanced": True,
             "sparse_strategy": "dense"}
    assert point_of_params(only, dense).balanced is False
    assert _allocation_text(study.pruning) == ("allocation uniform; PE-balanced blocks: both "
                                               "(swept), over each accelerator's PE columns")
    aware = yaml.safe_load((ROOT / "studies" / "allocation_tiny.yaml").read_text())
    from codesign.study import Study

    assert _allocation_text(Study.model_validate(aware).pruning) == (
        "allocation uniform, latency-aware; latency-aware speedup targets 1.5x, 2x; "
        "PE-balanced blocks: no")
    # one unbalanced + one balanced (one width) measurement per (task, block, ratio)
    assert describe(study, time_one=False)["accuracy_configs"] == 2
    wide = _data()
    wide["hardware"]["pe_array"] = ["16x32", "32x32", "32x16"]
    assert describe(Study.model_validate(wide), time_one=False)["accuracy_configs"] == 3
