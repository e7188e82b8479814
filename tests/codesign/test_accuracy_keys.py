"""The accuracy cache's keys are pinned: entries written by earlier versions stay valid.

The literal values below (for the first version's default recipes, V1_PRESETS) were computed
with codesign/accuracy.py as it stood before it became a package (commit 82c5afd), at
PROCEDURE_VERSION 1: the tests pin the key derivation at that version. If one fails, the
derivation changed and cached measurements would be orphaned by accident. PROCEDURE_VERSION
itself was bumped to 2 on purpose (length-bucketed training and a seeded classification head
change every trained model): `test_the_procedure_version_orphans_old_entries` checks that the
bump changes every key, so version-1 entries are never served as version 2.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from codesign import accuracy as acc
from codesign.accuracy import AccuracyCache, AccuracyError, Recipe, measurement
from codesign.hashing import short_hash

SHA = "ab" * 32
# the recipes the pins were computed with: the first version's defaults (2,000 dense examples,
# retraining 512 examples at lr 1e-4 from magnitude masks without distillation); the current
# defaults differ on purpose
V1_FIELDS = {"dense_examples": 2000, "dense_lr": 3e-4, "dense_fill": False,
             "retrain_examples": 512, "retrain_lr": 1e-4,
             "retrain_start": "magnitude", "distill": False, "recovery_holdout": 0}
V1_DEFAULT = Recipe(**V1_FIELDS)
V1_QUICK = Recipe.from_dict({**Recipe.quick().to_dict(), "retrain_start": "magnitude",
                             "recovery_holdout": 0,
                             "distill": False})
V1_PRESETS = {"default": V1_DEFAULT, "quick": V1_QUICK, "paper": Recipe.paper()}


@pytest.fixture(autouse=True)
def _version_one(monkeypatch):
    """The pins below were computed at PROCEDURE_VERSION 1."""
    monkeypatch.setattr("codesign.accuracy.recipe.PROCEDURE_VERSION", 1)

RECIPE_HASHES = {
    ("default", "oneshot"): "40739a74bf614e12", ("default", "retrain"): "3234eeec337783bb",
    ("default", "rgl"): "eb8541b3beff76af", ("quick", "oneshot"): "53baafc088f2b72c",
    ("quick", "retrain"): "bee5e9d741614df5", ("quick", "rgl"): "99a6c8a727ae03c2",
    ("paper", "oneshot"): "068af4f484ca8e8d", ("paper", "retrain"): "a801ef38ceb3177d",
    ("paper", "rgl"): "8475e04302b6799b",
}


@pytest.mark.parametrize("preset,fidelity", sorted(RECIPE_HASHES))
def test_recipe_hash_is_pinned(preset, fidelity):
    assert V1_PRESETS[preset].hash(fidelity) == RECIPE_HASHES[preset, fidelity]


def test_dense_checkpoint_folder_hash_is_pinned():
    # the dense checkpoint folder is named <sha[:16]>-<task>-<this hash>
    assert short_hash(V1_DEFAULT.dense_fields(), 12) == "afb92a8c093d"
    assert short_hash(V1_QUICK.dense_fields(), 12) == "10fddea5b512"
    assert short_hash(Recipe.paper().dense_fields(), 12) == "4f6aa4dc49ee"


@pytest.mark.parametrize("args,key", [
    ((SHA, "sst2", "16x16", 0.5, "retrain", V1_DEFAULT), "704d24046c3be24e24f5829e"),
    ((SHA, "SST-2", "32x1", 0.25, "rgl", V1_QUICK), "ec5e3385b06ff51281fc5f70"),
    ((SHA, "mrpc", None, 0.0, "rgl", Recipe.paper()), "d5e8c51e2d6a0f9243fa0e20"),
    ((SHA, "rte", "1x1", 1 / 3, "oneshot", Recipe(seed=3, **V1_FIELDS)),
     "3a346a029ba1c323b0b8acaa"),
])
def test_record_key_is_pinned(args, key):
    assert acc.record_key(*args) == key


def test_the_procedure_version_orphans_old_entries(monkeypatch):
    monkeypatch.setattr("codesign.accuracy.recipe.PROCEDURE_VERSION", 2)
    assert acc.record_key(SHA, "sst2", "16x16", 0.5, "retrain", V1_DEFAULT) != \
        "704d24046c3be24e24f5829e"
    assert all(V1_PRESETS[p].hash(f) != RECIPE_HASHES[p, f] for p, f in RECIPE_HASHES)


def test_dense_key_ignores_block_and_fidelity():
    keys = {acc.record_key(SHA, "sst2", b, 0.0, f, Recipe())
            for b in (None, "16x16") for f in acc.FIDELITIES}
    assert keys == {acc.record_key(SHA, "sst2", None, 0.0, "oneshot", Recipe())}


def test_block_text_is_the_block_shape_spelling():
    assert acc.block_text((16, 16)) == acc.block_text("16x16") == "16x16"
    assert acc.block_text(None) is None and acc.block_text("dense") is None
    with pytest.raises(AccuracyError):
        acc.block_text("16by16")


def _old_row(key: str, masks_path: str) -> tuple:
    """A row exactly as the pre-package code wrote it (columns and JSON record)."""
    recipe = V1_DEFAULT.stage_fields("retrain")
    record = {"task": "sst2", "metric": "accuracy", "dense": 0.8, "pruned": 0.7,
              "metrics": {"accuracy": 0.7}, "fidelity": "retrain", "recipe": recipe,
              "seconds": 12.5, "masks_path": masks_path, "key": key, "model": "minilm-l6",
              "model_sha256": SHA, "block_shape": "16x16", "ratio": 0.5, "seed": 0,
              "dense_metrics": {"accuracy": 0.8}, "dense_seconds": 180.0,
              "dense_checkpoint": "/x/dense", "density": 0.5, "dev_examples": 872,
              "device": "cpu", "created": "2025-01-01T00:00:00+00:00", "source": "measured",
              "from_cache": False, "compression": 2.0}
    return (key, "minilm-l6", SHA, "sst2", "16x16", 0.5, "retrain", short_hash(recipe),
            "accuracy", 0.8, 0.7, 0.5, 12.5, masks_path, record["created"],
            json.dumps(record, sort_keys=True))


def test_an_entry_written_by_the_old_code_is_served(tmp_path, monkeypatch):
    cache = AccuracyCache(tmp_path)
    masks = tmp_path / "masks.safetensors"
    masks.write_bytes(b"x")
    key = "704d24046c3be24e24f5829e"
    with contextlib.closing(sqlite3.connect(cache.path)) as conn, conn:
        conn.execute("INSERT INTO accuracy VALUES (" + ",".join("?" * 16) + ")",
                     _old_row(key, str(masks)))

    def boom(*a, **k):
        raise AssertionError("recomputed a cached point")

    monkeypatch.setattr(measurement, "model_sha256", lambda model: SHA)
    monkeypatch.setattr(measurement, "dense_checkpoint", boom)
    rec = acc.measure("minilm-l6", "sst2", "16x16", 0.5, "retrain", V1_DEFAULT, cache=cache)
    assert rec.from_cache and rec.key == key and rec.pruned == 0.7 and rec.density == 0.5
    assert rec.masks_path == str(masks) and rec.compression == 2.0


def test_recipe_from_spec_presets_and_overrides():
    assert Recipe.from_spec("quick") == Recipe.quick()
    assert Recipe.from_spec({"base": "paper", "seed": 2}) == Recipe.paper().__class__(
        **{**Recipe.paper().to_dict(), "seed": 2})
    assert Recipe.from_spec({"dense_examples": 10}) == Recipe(dense_examples=10)
    with pytest.raises(AccuracyError, match=r"recipe 'fast' unknown; allowed: default, quick, "
                                            r"paper"):
        Recipe.from_spec("fast")
    with pytest.raises(AccuracyError, match=r"recipe field 'epochs' unknown; allowed: base, "
                                            r"batch_size, calib_damping"):
        Recipe.from_spec({"base": "quick", "epochs": 3})


def test_fidelities_live_in_one_place():
    assert acc.FIDELITIES == ("oneshot", "calibrated", "retrain", "rgl")
    assert acc.check_fidelity("rgl") == "rgl"
    with pytest.raises(AccuracyError, match="choose one of oneshot, calibrated, retrain, rgl"):
        acc.check_fidelity("magic")
