"""Where `retrain` starts (recipe field `retrain_start`): the calibrated fidelity's masks and
reconstructed weights (the default) or magnitude one-shot (the seed's way).

Keys and errors are pure; the measurement test runs the real MiniLM-L6 weights and real SST-2
rows at the quick budget (48 examples, seq 32)."""
from __future__ import annotations

import numpy as np
import pytest

from codesign.accuracy import AccuracyCache, AccuracyError, Recipe, measure
from codesign.accuracy import fidelities as fidelities_mod
from codesign.accuracy import measurement as measurement_mod
from codesign.masks import load_masks

FIDELITIES = ("oneshot", "calibrated", "retrain", "rgl")
CALIB_FIELDS = ("calib_examples", "calib_saliency", "calib_damping", "calib_fisher_examples",
                "calib_min_density")


# ---- the recipe field and its keys ------------------------------------------------------------

@pytest.mark.parametrize("preset", ["default", "quick", "paper"])
def test_magnitude_start_keeps_every_key(preset):
    base = Recipe.from_dict({**Recipe.preset(preset).to_dict(), "retrain_start": "magnitude"})
    explicit = Recipe.from_dict({**base.to_dict(), "retrain_start": "magnitude"})
    for fidelity in FIDELITIES:
        assert explicit.hash(fidelity) == base.hash(fidelity)
        assert "retrain_start" not in base.stage_fields(fidelity)
    # with the magnitude start retrain reads no calib_* field: changing them keeps its key
    other = Recipe.from_dict({**base.to_dict(), "calib_examples": 7, "calib_saliency": "norm"})
    assert other.hash("retrain") == base.hash("retrain")
    assert base.dense_fields() == explicit.dense_fields()


def test_calibrated_start_enters_only_the_retrain_key_with_the_calib_fields():
    base, start = Recipe(retrain_start="magnitude"), Recipe(retrain_start="calibrated")
    for fidelity in ("oneshot", "calibrated", "rgl"):
        assert start.hash(fidelity) == base.hash(fidelity)
    fields = start.stage_fields("retrain")
    assert fields["retrain_start"] == "calibrated"
    assert {k: fields[k] for k in CALIB_FIELDS} == \
        {"calib_examples": 1024, "calib_saliency": "fisher", "calib_damping": 0.01,
         "calib_fisher_examples": 256, "calib_min_density": 0.05}
    assert start.hash("retrain") != base.hash("retrain")
    # the calibrated start depends on the calibration settings, so its key does too
    assert Recipe(retrain_start="calibrated", calib_saliency="norm").hash("retrain") != \
        start.hash("retrain")
    assert start.dense_fields() == base.dense_fields()  # one dense model serves both
    # with distillation on, both switches are in the key
    both = Recipe(retrain_start="calibrated", distill=True).stage_fields("retrain")
    assert both["distill"] is True and both["retrain_start"] == "calibrated"
    assert Recipe.from_spec({"base": "quick", "retrain_start": "calibrated"}).retrain_start == \
        "calibrated"


def test_unknown_start_is_a_one_line_error():
    with pytest.raises(AccuracyError, match=r"^recipe.retrain_start='obs': choose one of "
                                            r"magnitude, calibrated$"):
        Recipe(retrain_start="obs")
    with pytest.raises(AccuracyError, match="retrain_start='dense'"):
        Recipe.from_spec({"base": "quick", "retrain_start": "dense"})


# ---- the measurement --------------------------------------------------------------------------

def _grids(path):
    return {n: m.grid.copy() for n, m in load_masks(path).masks.items()}


@pytest.mark.slow
def test_calibrated_start_retrains_from_the_calibrated_masks(tmp_path, glue_dir, monkeypatch):
    cache = AccuracyCache(tmp_path / "cache")
    seen = {}  # fidelity -> the pruned model's parameters as evaluated
    real = measurement_mod.evaluate_dev

    def spy(model, tokenizer, task, dev, recipe):
        seen[len(seen)] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return real(model, tokenizer, task, dev, recipe)

    monkeypatch.setattr(measurement_mod, "evaluate_dev", spy)
    quick = Recipe.quick()
    # recovery_holdout 0: the retrained weights are kept whatever they score (tested below)
    start = Recipe.from_spec({"base": "quick", "retrain_start": "calibrated",
                              "recovery_holdout": 0})
    calibrated = measure("minilm-l6", "sst2", "16x16", 0.5, "calibrated", quick,
                         glue_dir=glue_dir, cache=cache)
    retrained = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain", start, glue_dir=glue_dir,
                        cache=cache)
    magnitude = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain",
                        Recipe.from_spec({"base": "quick", "retrain_start": "magnitude",
                                          "recovery_holdout": 0}),
                        glue_dir=glue_dir, cache=cache)
    assert len(seen) == 3  # three pruned evaluations (the dense one is not spied on)
    # the record says where retraining started; the magnitude record keeps its old fields
    assert retrained.recipe["retrain_start"] == "calibrated"
    assert retrained.recipe["calib_saliency"] == "fisher"
    assert retrained.recipe["calib_examples"] == 48
    assert "retrain_start" not in magnitude.recipe and magnitude.key != retrained.key
    assert retrained.dense == calibrated.dense == magnitude.dense
    # same saliency, same calibration sentences: the calibrated fidelity's masks exactly
    cal_grids, start_grids = _grids(calibrated.masks_path), _grids(retrained.masks_path)
    assert cal_grids.keys() == start_grids.keys() and len(cal_grids) == 36
    assert all(np.array_equal(cal_grids[n], start_grids[n]) for n in cal_grids)
    # ... which differ from magnitude one-shot's (obs saliency ranks differently)
    mag_grids = _grids(magnitude.masks_path)
    assert any(not np.array_equal(mag_grids[n], start_grids[n]) for n in mag_grids)
    # pruned weights stay exactly zero after retraining; the kept ones moved from the calibrated
    # reconstruction (retraining ran)
    after, before = seen[1], seen[0]
    moved = 0
    for name, mask in load_masks(retrained.masks_path).masks.items():
        keep = np.asarray(mask.to_dense())
        w = after[name].numpy()
        assert (w[~keep] == 0).all(), name
        assert (before[name].numpy()[~keep] == 0).all(), name
        moved += int(not np.array_equal(w[keep], before[name].numpy()[keep]))
    assert moved == 36


# ---- the held-out check of recovery -------------------------------------------------------------

def test_recovery_holdout_enters_only_the_retrain_key():
    base, off = Recipe(), Recipe(recovery_holdout=0)
    for fidelity in ("oneshot", "calibrated", "rgl"):
        assert base.hash(fidelity) == off.hash(fidelity)
    assert base.stage_fields("retrain")["recovery_holdout"] == 1024
    assert "recovery_holdout" not in off.stage_fields("retrain")
    assert base.hash("retrain") != off.hash("retrain")
    assert Recipe.paper().recovery_holdout == 0  # the seed's pipeline keeps what it trains
    with pytest.raises(AccuracyError, match=r"^recipe.recovery_holdout=-1: "):
        Recipe(recovery_holdout=-1)


def test_a_sample_as_large_as_the_split_leaves_the_held_out_sentences_out(glue_dir,
                                                                         monkeypatch):
    """RTE has 2,490 training pairs: a retraining sample of "more" trains on 2,490 - 48, and
    the 48 held-out pairs are none of them; a smaller sample is drawn as before."""
    import codesign.pruning.train as train_mod
    from codesign.checkpoints import load_model
    from codesign.glue import load_split

    seen = {}

    def recorded(model, tokenizer, split, config, **kwargs):
        seen["train"] = list(zip(split.text_a, split.text_b))

    def scored(model, tokenizer, task, split, recipe):
        seen["held"] = list(zip(split.text_a, split.text_b))
        return {"accuracy": 0.5}

    monkeypatch.setattr(train_mod, "finetune", recorded)
    monkeypatch.setattr(fidelities_mod, "evaluate_dev", scored)
    loaded = load_model("minilm-l6", task="rte", head_seed=0)
    for examples, trained in ((10**6, 2490 - 48), (100, 100)):
        recipe = Recipe.from_dict({**Recipe.quick().to_dict(), "retrain_examples": examples,
                                   "recovery_holdout": 48, "distill": False})
        out = fidelities_mod._retrain(loaded, {}, recipe, "rte", glue_dir, False,
                                      fidelities_mod.Teacher(recipe, "retrain", None, None))
        assert len(seen["train"]) == trained and len(seen["held"]) == 48
        assert not set(seen["train"]) & set(seen["held"]) and out["holdout_examples"] == 48
    assert len(load_split("rte", "train", glue_dir=glue_dir).text_a) == 2490


@pytest.mark.slow
@pytest.mark.parametrize("held_out", [(0.8, 0.6), (0.6, 0.6)])
def test_recovery_keeps_the_start_only_when_retraining_scores_lower(tmp_path, glue_dir,
                                                                   monkeypatch, held_out):
    """The held-out scores are scripted (start, retrained); the dev scores are real. Kept start:
    the retrain record scores exactly what the calibrated fidelity scored (same weights)."""
    real, script, seen = measurement_mod.evaluate_dev, list(held_out), []

    def scripted(model, tokenizer, task, split, recipe):
        if split.split == "train":  # the held-out slice of the training split
            seen.append(len(split.text_a))
            return {"accuracy": script.pop(0)}
        return real(model, tokenizer, task, split, recipe)

    # the held-out check (fidelities) and the dev evaluation (measurement)
    monkeypatch.setattr(fidelities_mod, "evaluate_dev", scripted)
    monkeypatch.setattr(measurement_mod, "evaluate_dev", scripted)
    cache, quick = AccuracyCache(tmp_path / "cache"), Recipe.quick()
    calibrated = measure("minilm-l6", "sst2", "16x16", 0.5, "calibrated", quick,
                         glue_dir=glue_dir, cache=cache)
    retrained = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain", quick, glue_dir=glue_dir,
                        cache=cache)
    assert seen == [48, 48] and not script
    rec = retrained.recovery
    assert (rec["start"], rec["retrained"]) == held_out and rec["holdout_examples"] == 48
    if held_out[1] < held_out[0]:
        assert rec["kept"] == "start"
        assert retrained.metrics == calibrated.metrics  # the calibrated weights, restored
    else:  # a tie keeps the retrained weights
        assert rec["kept"] == "retrained"
    assert calibrated.recovery == {}  # only retrain records carry the check
