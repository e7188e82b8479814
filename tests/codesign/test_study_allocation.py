"""Studies with latency-aware allocation (pruning.allocation, issue 12): studies/allocation_tiny.yaml
(uniform and latency-aware 16x16 points on two ZCU102 PE arrays, quick calibrated recipe, real
MiniLM, real SST-2 rows) runs end to end, re-runs from the store, labels its points, keeps the
uniform points' ids, meets every latency-aware point's target on its own accelerator (the written
masks re-simulated) and draws both kinds on pareto.png; the schema's one-line errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from cs_helpers import assert_rerun_from_store, study_figure

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "allocation_tiny.yaml"


@pytest.fixture(scope="module")
def aware_study(glue_dir):
    from codesign.study import load_study

    return load_study(STUDY)


@pytest.fixture(scope="module")
def aware_run(aware_study, cache, tmp_path_factory):
    from codesign.sweep import run_sweep

    return run_sweep(aware_study, tmp_path_factory.mktemp("allocation"), workers=1, cache=cache)


def _variant(**pruning):
    """allocation_tiny.yaml with its pruning section replaced by `pruning` (keys set to None
    are removed), validated."""
    from codesign.study import Study

    data = yaml.safe_load(STUDY.read_text())
    data["pruning"] = {k: v for k, v in {**data["pruning"], **pruning}.items() if v is not None}
    return Study.model_validate(data)


def test_points_are_labelled_and_uniform_ids_kept(aware_run, aware_study):
    from codesign.sweep import DesignSpace

    df = aware_run.points
    assert aware_run.n_failed == 0 and len(df) == 8 and df["point_id"].is_unique
    aware = df[df["allocation"] == "latency-aware"]
    uniform = df[(df["allocation"] == "uniform") & (df["block_shape"] != "dense")]
    # 1 block x 2 targets x 2 arrays, and 1 block x 1 ratio x 2 arrays
    assert sorted(aware["speedup_target"]) == [1.5, 1.5, 2.0, 2.0]
    assert len(uniform) == 2 and uniform["speedup_target"].isna().all()
    assert set(aware["accuracy_fidelity"]) == {"calibrated"}
    assert set(df.loc[df["block_shape"] == "dense", "allocation"]) == {"uniform"}
    # a uniform point's id does not depend on whether the study also has latency-aware points
    plain = DesignSpace.of(_variant(allocation=["uniform"], speedup_targets=None)).points()
    assert {p.point_id for p in plain} == set(df.loc[df["allocation"] == "uniform", "point_id"])
    # a uniform-only study's table and distributions are as before: no allocation columns
    assert all(p.allocation is None for p in plain)
    assert "allocation" not in plain[-1].params()


def test_latency_aware_points_meet_their_target(aware_run, aware_study, cache):
    """Each latency-aware point's written masks, re-simulated on its own accelerator, give its
    latency_ms, at most its accelerator's dense baseline / target; its accuracy is its own."""
    import hwmodels

    from codesign.masks import load_masks
    from codesign.study import resolve
    from codesign.sweep import DesignSpace
    from codesign.workload import encoder_workload, model_config

    df = aware_run.points
    space = DesignSpace.of(aware_study)
    dense = df[df["block_shape"] == "dense"].set_index("array")["latency_ms"]
    keys, grids = set(), {}
    for _, row in df[df["allocation"] == "latency-aware"].iterrows():
        prov = json.loads(row["provenance"])["accuracy"]
        loaded = load_masks(prov["masks_path"])
        masks = dict(loaded.masks)
        acc = resolve(aware_study, space.point_of_record(row.to_dict()).accelerator).accelerator
        wl = encoder_workload(model_config("minilm-l6"), 32, 1, mask_names=list(masks))
        latency = hwmodels.simulate(wl, acc, masks).latency_ms
        assert latency == pytest.approx(row["latency_ms"], rel=1e-12)
        assert latency <= dense[row["array"]] / row["speedup_target"] * (1 + 1e-12)
        assert hwmodels.simulate(wl, acc).latency_ms == pytest.approx(dense[row["array"]],
                                                                       rel=1e-12)
        # prune_ratio: the fraction of blocks the allocation removed
        kept = sum(m.kept_blocks for m in masks.values())
        total = sum(m.grid.size for m in masks.values())
        assert row["prune_ratio"] == pytest.approx(1 - kept / total, abs=1e-6)
        alloc = prov["allocation"]
        assert alloc["speedup"] == row["speedup_target"] and alloc["seq_len"] == 32
        meta = loaded.metadata["allocation"]
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert meta["accelerator"] == alloc["accelerator"]
        record = cache.get(prov["key"])
        assert record is not None and record.allocation == alloc
        assert record.pruned == pytest.approx(row["accuracy"])
        keys.add(prov["key"])
        grids[(row["array"], row["speedup_target"])] = {n: m.grid for n, m in masks.items()}
    assert len(keys) == 4  # one measurement per (target, accelerator)
    # a new results folder gets the measurement from the accuracy cache, key for key
    from codesign.accuracy import Recipe
    from codesign.accuracy.allocated import measure_allocated

    hit = measure_allocated("minilm-l6", "sst2", "16x16", accelerator=acc,
                            speedup=row["speedup_target"], seq_len=32, batch=1,
                            recipe=Recipe.from_spec(aware_study.accuracy.recipe),
                            glue_dir=aware_study.glue_dir, cache=cache)
    assert hit.from_cache and hit.key == prov["key"]
    # the masks follow the accelerator: the two arrays do not choose the same blocks
    a, b = grids[("16x16", 2.0)], grids[("32x32", 2.0)]
    assert any((a[n] != b[n]).any() for n in a)


def test_rerun_is_served_from_the_store(aware_run, aware_study, cache):
    assert_rerun_from_store(aware_study, aware_run, cache,
                            ["point_id", "allocation", "speedup_target", "prune_ratio",
                             "latency_ms", "accuracy", "pareto"])


def test_pareto_plot_shows_both_allocations(aware_run, aware_study):
    from codesign.plots import AWARE_GID

    _, fig, drawn, texts = study_figure(aware_run, aware_study, AWARE_GID)
    assert drawn == 2 * 4  # 4 points on 2 panels
    assert any(t.startswith("latency-aware") for t in texts)
    assert any(t.startswith("uniform") for t in texts)
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"1.5x", "2x"} <= labels


def test_report_names_the_allocation_and_target(aware_run, aware_study):
    from codesign.plots import load_points
    from codesign.report import render_report

    df = load_points(aware_run.out_dir / "points.csv")
    text = render_report(df, aware_study.to_plain())
    table = text[text.index("| block shape"):]
    header = table.splitlines()[0]
    assert "| allocation |" in header
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    aware = df[df["pareto"].astype(bool) & (df["allocation"] == "latency-aware")]
    assert sum("latency-aware, " in line for line in rows) == len(aware)
    for target in aware["speedup_target"]:
        assert f"latency-aware, {target:g}x target" in table


def _error(tmp_path: Path, **pruning) -> str:
    from codesign.study import StudyError, load_study

    data = yaml.safe_load(STUDY.read_text())
    data["pruning"] = {k: v for k, v in {**data["pruning"], **pruning}.items() if v is not None}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StudyError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text and "pruning" in text
    return text


def test_schema_errors(tmp_path):
    assert "speedup_targets" in _error(tmp_path, speedup_targets=None)
    assert "remove the key" in _error(tmp_path, allocation=["uniform"])
    assert "method: calibrated" in _error(tmp_path, method="magnitude")
    assert "above 1" in _error(tmp_path, speedup_targets=[1.0])
    assert "allowed: uniform, latency-aware" in _error(tmp_path, allocation=["greedy"])
    assert "compression" in _error(tmp_path, allocation=["latency-aware"])
    study = _variant(allocation="latency_aware", compression=None)
    assert study.pruning.allocation == ["latency-aware"] and study.pruning.ratios == []
    assert study.pruning.targets == [1.5, 2.0]
    from codesign.study import Study

    data = yaml.safe_load(STUDY.read_text())
    data["search"] = {"method": "nsga2", "trials": 4}
    with pytest.raises(ValueError, match="search.method: grid"):
        Study.model_validate(data)
    assert not math.isnan(_variant().pruning.targets[0])


def test_accelerator_identity_ignores_pricing_only():
    import hwmodels

    from codesign.accuracy.allocated import allocation_spec
    from codesign.accuracy.recipe import AccuracyError
    from codesign.pruning.allocation import accelerator_identity

    base = hwmodels.load_board("zcu102")
    same = hwmodels.load_board("zcu102", {"energy": {"mac_pj": 9.0}})
    other = hwmodels.load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16}})
    slow_dram = hwmodels.load_board("zcu102", {"dram": {"bandwidth_gb_s": 6.4}})
    assert accelerator_identity(base) == accelerator_identity(same)
    ids = {accelerator_identity(a) for a in (base, other, slow_dram)}
    assert len(ids) == 3
    spec = allocation_spec(base, speedup=2, seq_len=32, batch=1)
    assert spec["speedup"] == 2.0 and spec["accelerator"] == accelerator_identity(base)
    assert (spec["importance"], spec["min_density"]) == ("relative", 0.25)  # obs: as before
    fisher = allocation_spec(base, speedup=2, seq_len=32, batch=1, saliency="fisher")
    assert (fisher["importance"], fisher["min_density"]) == ("fisher", 0.0)
    with pytest.raises(AccuracyError, match="above 1"):
        allocation_spec(base, speedup=1.0, seq_len=32, batch=1)


def test_record_allocation_field_round_trips_and_exports(tmp_path):
    import csv

    from codesign.accuracy import AccuracyCache, AccuracyRecord

    cache = AccuracyCache(tmp_path)
    common = dict(task="sst2", metric="accuracy", dense=0.9, pruned=0.8,
                  metrics={"accuracy": 0.8}, fidelity="calibrated", recipe={}, seconds=1.0,
                  masks_path=None)
    cache.put(AccuracyRecord(key="a", **common))
    cache.put(AccuracyRecord(key="b", allocation={"speedup": 2.0}, **common))
    assert cache.get("a").allocation == {} and cache.get("b").allocation == {"speedup": 2.0}
    old = AccuracyRecord.from_dict({k: v for k, v in cache.get("a").to_dict().items()
                                    if k != "allocation"})
    assert old.allocation == {}  # records written before the field
    with open(cache.export_csv(tmp_path / "x.csv")) as fh:
        rows = {r["key"]: r for r in csv.DictReader(fh)}
    assert json.loads(rows["b"]["allocation"]) == {"speedup": 2.0}
    assert json.loads(rows["a"]["allocation"]) == {}
