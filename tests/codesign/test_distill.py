"""Distillation in recovery: the loss term, its cached teacher, and the recipe switch.

Real MiniLM-L6 weights and real SST-2 rows at tiny budgets (48 examples, seq 32)."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from codesign.accuracy import AccuracyCache, Recipe, measure  # noqa: E402
from codesign.accuracy import teacher as teacher_mod  # noqa: E402

KEYS_V1 = {"retrain": "3234eeec337783bb", "rgl": "eb8541b3beff76af",
           "oneshot": "40739a74bf614e12"}  # tests/codesign/test_accuracy_keys.py pins


# ---- the loss term ----------------------------------------------------------------------------

def test_kl_term_is_zero_when_student_equals_teacher():
    from codesign.pruning.train import distill_loss

    logits = torch.tensor([[1.5, -0.25], [0.0, 3.0], [-2.0, -2.0]])
    assert float(distill_loss(logits, logits.clone(), 2.0)) == 0.0
    assert float(distill_loss(logits[:, :1], logits[:, :1].clone(), 2.0)) == 0.0  # regression


def test_kl_term_is_t_squared_times_the_kl_of_the_softened_distributions():
    from codesign.pruning.train import distill_loss

    student, teacher, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 2.0
    p = [math.exp(0.0) / (math.exp(0.0) + math.exp(0.5)), math.exp(0.5) / (math.exp(0.0) +
                                                                          math.exp(0.5))]
    q = [math.exp(1.0) / (math.exp(1.0) + 1.0), 1.0 / (math.exp(1.0) + 1.0)]
    gold = t * t * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert float(distill_loss(student, teacher, t)) == pytest.approx(gold, rel=1e-6)
    # regression head: mean squared error, temperature unused
    assert float(distill_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]]),
                              5.0)) == pytest.approx(2.5)


def test_hidden_term_is_the_layer_sum_of_mean_squares_over_real_tokens():
    from codesign.pruning.train import hidden_distill_loss

    # [batch 1, tokens 3, width 2]; the third token is padding; index 0 (embeddings) is ignored
    emb = torch.full((1, 3, 2), 9.0)
    s1, t1 = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [50.0, 50.0]]]), torch.zeros(1, 3, 2)
    s2, t2 = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [-7.0, 1.0]]]), torch.zeros(1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    gold = (1 + 4) / 4 + 9 / 4  # layer 1: (1 + 4) over 2 tokens x 2 features; layer 2: 9 / 4
    got = hidden_distill_loss((emb, s1, s2), (emb * 0, t1, t2), mask)
    assert float(got) == pytest.approx(gold)
    assert float(hidden_distill_loss((emb, s1, s2), (emb, s1, s2), mask)) == 0.0


# ---- the training loop ------------------------------------------------------------------------

def _train(teacher=None, alpha=0.0, max_examples=None, hidden=0.0, teacher_model=None):
    from codesign.checkpoints import load_model
    from codesign.glue import load_split
    from codesign.pruning.train import TrainConfig, finetune

    loaded = load_model("minilm-l6", task="sst2", head_seed=0)
    split = load_split("sst2", "train", limit=48, seed=0)
    config = TrainConfig(epochs=1, lr=3e-4, batch_size=16, max_seq_len=32, seed=0, threads=1,
                         max_examples=max_examples, teacher_logits=teacher,
                         distill_alpha=alpha, distill_temperature=2.0, distill_hidden=hidden,
                         teacher_model=teacher_model)
    stats = finetune(loaded.model, loaded.tokenizer, split, config, progress=False)
    return {n: p.detach().clone() for n, p in loaded.model.named_parameters()}, stats


def test_alpha_zero_is_plain_cross_entropy_bit_for_bit(glue_dir):
    teacher = np.random.default_rng(0).normal(size=(48, 2)).astype(np.float32)
    plain, plain_stats = _train()
    zero, zero_stats = _train(teacher, alpha=0.0)
    assert all(torch.equal(plain[n], zero[n]) for n in plain)
    assert zero_stats.final_task_loss == plain_stats.final_task_loss
    assert zero_stats.extra["distill_alpha"] == 0.0 and "distill_alpha" not in plain_stats.extra
    assert zero_stats.extra["final_distill_loss"] > 0  # computed, weighted by zero
    # the same teacher at alpha 0.5 moves the weights elsewhere: its rows are used
    half, _ = _train(teacher, alpha=0.5)
    assert not torch.equal(plain["classifier.weight"], half["classifier.weight"])


def test_teacher_rows_follow_the_example_subset(glue_dir):
    """Rows align with the split given to finetune; max_examples subsets them alike: a teacher
    that differs only on examples outside the subset trains the same weights."""
    from codesign.pruning.train import subset_indices

    keep = subset_indices(48, 24, 0)
    teacher = np.random.default_rng(1).normal(size=(48, 2)).astype(np.float32)
    other = teacher.copy()
    other[np.setdiff1d(np.arange(48), keep), 0] += 5.0  # not a shift: softmax changes
    a, _ = _train(teacher, alpha=1.0, max_examples=24)
    b, _ = _train(other, alpha=1.0, max_examples=24)
    assert all(torch.equal(a[n], b[n]) for n in a)
    other[keep[0], 0] += 5.0  # one row inside the subset changes the result
    c, _ = _train(other, alpha=1.0, max_examples=24)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def _hidden_gap(weights, teacher_model):
    """The hidden term between a model with `weights` and `teacher_model` on 16 sentences."""
    from codesign.checkpoints import load_model
    from codesign.glue import load_split
    from codesign.pruning.train import hidden_distill_loss

    loaded = load_model("minilm-l6", task="sst2", head_seed=0)
    loaded.model.load_state_dict(weights, strict=False)
    batch = loaded.tokenizer(load_split("sst2", "train", limit=16, seed=5).text_a,
                             padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        ours = loaded.model.eval()(**batch, output_hidden_states=True).hidden_states
        theirs = teacher_model.eval()(**batch, output_hidden_states=True).hidden_states
    return float(hidden_distill_loss(ours, theirs, batch["attention_mask"]))


def test_hidden_matching_pulls_the_student_toward_the_teacher(glue_dir):
    """Weight 0 is plain training bit for bit; weight 10 toward a teacher whose encoder
    weights are halved ends closer to its hidden states than plain training does."""
    from codesign.checkpoints import load_model

    other = load_model("minilm-l6", task="sst2", head_seed=0).model
    with torch.no_grad():
        for p in other.bert.encoder.parameters():
            p.mul_(0.5)
    plain, _ = _train()
    off, off_stats = _train(teacher_model=other)
    assert all(torch.equal(plain[n], off[n]) for n in plain)
    assert "distill_hidden" not in off_stats.extra
    pulled, stats = _train(hidden=10.0, teacher_model=other)
    assert stats.extra["distill_hidden"] == 10.0 and stats.extra["final_hidden_loss"] > 0
    assert _hidden_gap(pulled, other) < 0.9 * _hidden_gap(plain, other)
    with pytest.raises(ValueError, match="distill_hidden > 0 needs teacher_model"):
        _train(hidden=1.0)


def test_teacher_of_the_wrong_shape_is_a_one_line_error(glue_dir):
    with pytest.raises(ValueError, match=r"teacher_logits: shape \(47, 2\), the split needs "
                                         r"\(48, 2\)"):
        _train(np.zeros((47, 2), np.float32), alpha=0.5)


# ---- the recipe and its keys ------------------------------------------------------------------

def test_distill_off_keeps_every_key(monkeypatch):
    monkeypatch.setattr("codesign.accuracy.recipe.PROCEDURE_VERSION", 1)
    # the first version's default recipe (2,000 dense examples, magnitude start) without
    # distillation: its keys do not see the distillation fields
    then = {"dense_examples": 2000, "dense_lr": 3e-4, "dense_fill": False,
            "retrain_examples": 512, "retrain_lr": 1e-4}
    off = Recipe(**then, retrain_start="magnitude", distill=False, distill_alpha=0.9,
                 distill_temperature=7.0, recovery_holdout=0)
    for fidelity, key in KEYS_V1.items():
        assert off.hash(fidelity) == key
    assert off.dense_fields() == Recipe(**then).dense_fields()


def test_distill_on_enters_only_the_training_fidelities():
    on, off = Recipe(distill=True), Recipe(distill=False)
    for fidelity in ("oneshot", "calibrated"):
        assert on.hash(fidelity) == off.hash(fidelity) and not on.distills(fidelity)
    for fidelity in ("retrain", "rgl"):
        fields = on.stage_fields(fidelity)
        assert on.distills(fidelity) and on.hash(fidelity) != off.hash(fidelity)
        assert (fields["distill"], fields["distill_alpha"], fields["distill_temperature"]) == \
            (True, 0.5, 2.0)
        assert Recipe(distill=True, distill_alpha=0.25).hash(fidelity) != on.hash(fidelity)
    assert on.dense_fields() == off.dense_fields()  # one dense model serves both
    assert Recipe.from_spec({"base": "quick", "distill": True}).distill


@pytest.mark.parametrize("field,value,message", [
    ("distill_alpha", 1.5, r"recipe.distill_alpha=1.5: must lie in \[0, 1\]"),
    ("distill_temperature", 0.0, "recipe.distill_temperature=0.0: must be > 0"),
    ("distill", "yes", "recipe.distill='yes': use true or false"),
    ("distill_hidden", -1.0, r"recipe.distill_hidden=-1.0: a weight >= 0 \(0 = off\)"),
])
def test_bad_distill_fields_are_one_line_errors(field, value, message):
    from codesign.accuracy import AccuracyError

    with pytest.raises(AccuracyError, match=message):
        Recipe(**{field: value})
    with pytest.raises(AccuracyError, match="distill_hidden=1.0 needs distill: true"):
        Recipe(distill=False, distill_hidden=1.0)


def test_hidden_matching_enters_the_training_keys_only_when_on():
    on = Recipe(distill_hidden=1.0)
    for fidelity in ("oneshot", "calibrated"):
        assert on.hash(fidelity) == Recipe().hash(fidelity)
    for fidelity in ("retrain", "rgl"):
        assert "distill_hidden" not in Recipe().stage_fields(fidelity)
        assert on.stage_fields(fidelity)["distill_hidden"] == 1.0
        assert on.hash(fidelity) != Recipe().hash(fidelity)


# ---- measurement: the cached teacher ----------------------------------------------------------

@pytest.fixture(scope="module")
def distil_cache(tmp_path_factory):
    return AccuracyCache(tmp_path_factory.mktemp("distil-cache"))


def test_measure_distils_from_the_cached_teacher(glue_dir, distil_cache, monkeypatch):
    recipe = Recipe.from_spec({"base": "quick", "distill": True})
    teacher_dir = distil_cache.root / "teacher"
    first = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain", recipe, cache=distil_cache)
    assert first.recipe["distill"] is True and first.recipe["distill_alpha"] == 0.5
    assert len(list(teacher_dir.glob("*.npy"))) == 1
    # rgl trains on its own sample (stage seed 2): one more teacher file
    rgl = measure("minilm-l6", "sst2", "16x16", 0.5, "rgl", recipe, cache=distil_cache)
    assert rgl.recipe["distill"] is True
    files = sorted(teacher_dir.glob("*.npy"))
    assert len(files) == 2 and all(np.load(f).shape == (48, 2) for f in files)
    written = [f.stat().st_mtime_ns for f in files]

    # from now on the teacher model may not run: its rows come from the files
    def boom(*args, **kwargs):
        raise AssertionError("the teacher model ran during student training")

    monkeypatch.setattr(teacher_mod, "_compute", boom)
    for fidelity in ("retrain", "rgl"):
        again = measure("minilm-l6", "sst2", "16x16", 0.25, fidelity, recipe,
                        cache=distil_cache)
        assert again.recipe["distill"] is True and not again.from_cache
    assert sorted(teacher_dir.glob("*.npy")) == files
    assert [f.stat().st_mtime_ns for f in files] == written


def test_distilled_and_plain_records_are_kept_apart(glue_dir, distil_cache):
    on = Recipe.from_spec({"base": "quick", "distill": True})
    plain = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain",
                    Recipe.from_spec({"base": "quick", "distill": False}), cache=distil_cache)
    distilled = measure("minilm-l6", "sst2", "16x16", 0.5, "retrain", on, cache=distil_cache)
    assert "distill" not in plain.recipe and distilled.recipe["distill"] is True
    assert plain.key != distilled.key and plain.dense == distilled.dense
