"""`Recipe.quant_calib_examples`: the calibration size of fake quantization, in the cache key
only when the precision is not fp32. The pinned values were computed with the code before the
field existed (commit 32a9e41, a module constant of 256): the default keeps every key."""
from __future__ import annotations

import pytest

from codesign.accuracy import AccuracyError, Recipe, record_key
from codesign.accuracy.measurement import _record_recipe

SHA = "ab" * 32
PINNED = {  # (precision, block, ratio) -> key at commit 32a9e41
    ("w8a8", "16x16", 0.5): "693ec0d80f07b600c0f99d6f",
    ("w4a8", "16x16", 0.5): "3f11066104e4f94bb5d7fecf",
    ("fp32", "16x16", 0.5): "62e9d4d26c8d38860426fd85",
    ("w8a8", None, 0.0): "60b6eba23f5be5a1b0ee18a4",
    ("w4a8", None, 0.0): "4bf64621ee91a4b4e46ddfd9",
    ("fp32", None, 0.0): "853d105f94b5a3dbb9401f56",
}
THEN = Recipe(dense_lr=3e-4, dense_fill=False)  # the default recipe at commit 32a9e41


@pytest.mark.parametrize("precision,block,ratio", sorted(PINNED, key=str))
def test_the_default_keeps_the_keys_of_before(precision, block, ratio):
    assert Recipe().quant_calib_examples == 256
    key = record_key(SHA, "sst2", block, ratio, "oneshot", THEN, precision)
    assert key == PINNED[precision, block, ratio]


def test_it_enters_the_key_only_when_quantized():
    other = Recipe.from_dict({**THEN.to_dict(), "quant_calib_examples": 128})
    for fidelity in ("oneshot", "calibrated", "retrain", "rgl"):
        assert other.hash(fidelity) == THEN.hash(fidelity)  # no fidelity hashes it
    assert other.dense_fields() == THEN.dense_fields()
    args = (SHA, "sst2", "16x16", 0.5, "oneshot")
    assert record_key(*args, other, "fp32") == PINNED["fp32", "16x16", 0.5]
    assert record_key(*args, other, "w8a8") != PINNED["w8a8", "16x16", 0.5]
    assert record_key(*args, other, "w8a8") != record_key(*args, other, "w4a8")


def test_quant_fields_and_the_record_recipe():
    recipe = Recipe(quant_calib_examples=64)
    assert recipe.quant_fields("fp32") == {}
    assert recipe.quant_fields("w4a8") == {"precision": "w4a8", "quant_calib_examples": 64}
    assert _record_recipe(recipe, "oneshot", "fp32") == recipe.stage_fields("oneshot")
    assert _record_recipe(recipe, "oneshot", "w4a8") == {**recipe.stage_fields("oneshot"),
                                                         "quant_calib_examples": 64}


def test_a_study_recipe_may_set_it_and_bad_values_are_one_line_errors():
    assert Recipe.from_spec({"base": "quick", "quant_calib_examples": 32}).quant_calib_examples \
        == 32
    with pytest.raises(AccuracyError, match="recipe.quant_calib_examples=0"):
        Recipe(quant_calib_examples=0)
