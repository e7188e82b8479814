"""The dense stage fills a small training split: whole passes until `dense_examples` are seen,
so STS-B's 5,749 pairs get three passes at the default 16,000 and SST-2's 67,349 one; the
filling enters the cache keys only where it may change the model."""
from __future__ import annotations

import pytest

from codesign.accuracy import AccuracyCache, AccuracyError, Recipe
from codesign.accuracy import dense as dense_mod


class _Stop(Exception):
    pass


@pytest.mark.parametrize("examples,epochs,split,passes", [
    (16000, 1, 5749, 3), (16000, 1, 67349, 1), (16000, 2, 5749, 6), (5749, 1, 5749, 1),
    (5750, 1, 5749, 2), (48, 1, 5749, 1)])
def test_passes_fill_the_budget_with_whole_passes(examples, epochs, split, passes):
    assert Recipe(dense_examples=examples, dense_epochs=epochs).dense_passes(split) == passes


def test_no_filling_without_a_count_or_when_off():
    assert Recipe(dense_examples=None).dense_passes(10) == 1
    assert Recipe(dense_fill=False).dense_passes(10) == 1
    assert Recipe(dense_fill=False, dense_epochs=3).dense_passes(10) == 3
    with pytest.raises(AccuracyError, match="recipe.dense_fill='yes': use true or false"):
        Recipe(dense_fill="yes")


def test_the_fill_enters_the_keys_only_where_it_may_fill():
    assert Recipe().dense_fields()["dense_fill"] is True
    assert "dense_fill" in Recipe().stage_fields("calibrated")
    # off, or nothing to fill (the whole split): the keys of before the field existed
    assert "dense_fill" not in Recipe(dense_fill=False).dense_fields()
    assert "dense_fill" not in Recipe(dense_examples=None).stage_fields("retrain")
    assert Recipe.paper().hash("retrain") == \
        Recipe.from_dict({**Recipe.paper().to_dict(), "dense_fill": False}).hash("retrain")
    assert Recipe().hash("oneshot") != Recipe(dense_fill=False).hash("oneshot")


@pytest.mark.parametrize("task,fill,epochs", [("stsb", True, 3), ("sst2", True, 1),
                                              ("stsb", False, 1)])
def test_the_dense_stage_trains_the_filled_passes(glue_dir, tmp_path, monkeypatch, task, fill,
                                                  epochs):
    seen = {}

    def fake_finetune(model, tokenizer, split, config, progress=False):
        seen.update(examples=len(split.text_a), epochs=config.epochs,
                    max_examples=config.max_examples)
        raise _Stop

    class Loaded:
        model = tokenizer = None

    monkeypatch.setattr("codesign.pruning.train.finetune", fake_finetune)
    monkeypatch.setattr("codesign.checkpoints.load_model", lambda *a, **k: Loaded())
    with pytest.raises(_Stop):
        dense_mod.dense_checkpoint("minilm-l6", task, Recipe(dense_fill=fill), glue_dir=glue_dir,
                                   cache=AccuracyCache(tmp_path))
    assert seen["epochs"] == epochs and seen["max_examples"] == 16000
    assert seen["examples"] == {"stsb": 5749, "sst2": 16000}[task]
