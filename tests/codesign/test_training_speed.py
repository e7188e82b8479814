"""Length-bucketed training batches, the tokenisation cache and length-sorted evaluation, on the
real SST-2 rows and the real MiniLM tokenizer/weights."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def loaded():
    from codesign.checkpoints import load_model

    return load_model("minilm-l6", task="sst2")


@pytest.fixture(scope="module")
def train_lengths(loaded, glue_dir):
    from codesign.glue import load_split
    from codesign.pruning.batching import encode, lengths_of

    split = load_split("sst2", "train", limit=1000, seed=3)
    return lengths_of(encode(loaded.tokenizer, split, 64))


def _batches(lengths, mode, seed, batch_size=32):
    from codesign.pruning.batching import epoch_batches

    generator = torch.Generator().manual_seed(seed)
    return [epoch_batches(lengths, batch_size, mode, generator) for _ in range(2)]  # 2 epochs


@pytest.mark.parametrize("mode", ["bucket", "longest", "max_length"])
def test_every_example_once_per_epoch(train_lengths, mode):
    n = len(train_lengths)
    for epoch in _batches(train_lengths, mode, seed=0):
        flat = [i for batch in epoch for i in batch]
        assert sorted(flat) == list(range(n))
        assert [len(b) for b in epoch].count(32) == n // 32 and len(epoch) == -(-n // 32)


def test_bucket_batches_are_windows_of_the_sorted_lengths(train_lengths):
    lengths = train_lengths
    assert lengths.max() > 3 * lengths.min()  # real SST-2: lengths vary, so the test can fail
    epoch = _batches(lengths, "bucket", seed=0)[0]
    windows = sorted((sorted(lengths[b].tolist()) for b in epoch), key=lambda w: (w[0], w[-1]))
    # the batches are consecutive windows of the length-sorted examples
    assert [x for w in windows for x in w] == np.sort(lengths).tolist()
    # so each batch pads to the largest length of its window: the least padding for batches
    # of 32 examples; random batches pad far more
    padded = {mode: sum(len(b) * int(lengths[b].max())
                        for b in _batches(lengths, mode, seed=0)[0])
              for mode in ("bucket", "longest")}
    sorted_lengths = np.sort(lengths)
    gold = sum(len(w) * int(w[-1]) for w in np.array_split(sorted_lengths,
                                                           range(32, len(lengths), 32)))
    assert padded["bucket"] == gold
    assert padded["longest"] > 1.5 * padded["bucket"]


def test_batch_order_is_seeded(train_lengths):
    same = _batches(train_lengths, "bucket", seed=7)
    assert same == _batches(train_lengths, "bucket", seed=7)
    other = _batches(train_lengths, "bucket", seed=8)
    assert same[0] != other[0]
    # the two epochs of one run visit the batches in different orders
    assert same[0] != same[1]


def test_old_modes_draw_the_previous_order(train_lengths):
    # "longest"/"max_length" make exactly the draws of the previous loop: one randperm per epoch
    n = len(train_lengths)
    generator = torch.Generator().manual_seed(5)
    expected = [torch.randperm(n, generator=generator).tolist() for _ in range(2)]
    for mode in ("longest", "max_length"):
        got = _batches(train_lengths, mode, seed=5)
        assert [[i for b in epoch for i in b] for epoch in got] == expected


def test_encode_cache_tokenises_each_sentence_once(loaded, glue_dir, monkeypatch):
    from codesign.glue import load_split
    from codesign.pruning import batching

    batching.clear_encode_cache()
    calls = []
    real = batching._tokenize
    monkeypatch.setattr(batching, "_tokenize",
                        lambda tok, pairs, seq: calls.append(len(pairs)) or real(tok, pairs, seq))
    tok = loaded.tokenizer
    full = load_split("sst2", "dev", limit=60, seed=0)
    part = load_split("sst2", "dev", limit=30, seed=1)
    first = batching.encode(tok, full, 16)
    assert batching.encode(tok, full, 16) == first
    batching.encode(tok, part, 16)
    batching.encode(tok, full, 32)  # another max_seq_len: its own entry
    new_in_part = len(set(part.text_a) - set(full.text_a))
    assert calls == [len(set(full.text_a))] + ([new_in_part] if new_in_part else []) \
        + [len(set(full.text_a))]
    direct = tok(full.text_a, truncation=True, max_length=16, padding=False)
    assert [f["input_ids"] for f in first] == direct["input_ids"]
    assert max(len(f["input_ids"]) for f in first) == 16  # truncation applied


def test_sorted_evaluation_returns_the_original_order(loaded, glue_dir):
    from codesign.glue import load_split
    from codesign.pruning.train import evaluate

    dev = load_split("sst2", "dev", limit=40, seed=0)
    model = loaded.model
    sorted_preds = evaluate(model, loaded.tokenizer, dev, max_seq_len=64, batch_size=8)
    plain_preds = evaluate(model, loaded.tokenizer, dev, max_seq_len=64, batch_size=8,
                           sort_by_length=False)
    assert np.array_equal(sorted_preds, plain_preds)
    # a one-output copy of the model gives per-sentence scores: a misplaced prediction would
    # show as a different score, not only as a flipped class
    head = torch.nn.Linear(model.classifier.in_features, 1)
    torch.nn.init.normal_(head.weight, std=0.5, generator=torch.Generator().manual_seed(0))
    original, model.classifier, model.num_labels = model.classifier, head, 1
    try:
        scores = evaluate(model, loaded.tokenizer, dev, max_seq_len=64, batch_size=8)
        plain = evaluate(model, loaded.tokenizer, dev, max_seq_len=64, batch_size=8,
                         sort_by_length=False)
    finally:
        model.classifier, model.num_labels = original, 2
    assert scores.dtype == np.float32 and len(np.unique(scores)) == len(set(dev.text_a))
    # distinct scores, each equal to its unsorted value: every prediction is in its own place
    np.testing.assert_allclose(scores, plain, rtol=0, atol=1e-5)
    assert np.diff(np.sort(np.unique(scores))).min() > 1e-5 or len(scores) < 2


def test_train_config_checks_the_batching_mode():
    from codesign.pruning.train import TrainConfig

    with pytest.raises(ValueError, match="batching 'sorted': choose one of bucket, longest"):
        TrainConfig(batching="sorted")
    assert TrainConfig(pad_to_max=True).batching_mode == "max_length"
    assert TrainConfig().batching_mode == "bucket"
    with pytest.raises(ValueError, match="threads=0"):
        TrainConfig(threads=0)


def test_default_threads_follow_the_environment(monkeypatch):
    import os

    from codesign.pruning.batching import default_threads, run_settings

    monkeypatch.delenv("CODESIGN_THREADS", raising=False)
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CODESIGN_THREADS", "1")
    before = torch.get_num_threads()
    with run_settings(None, torch.device("cpu")) as count:
        assert count == torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == before and not torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("CODESIGN_THREADS", "two")
    with pytest.raises(ValueError, match=r"\$CODESIGN_THREADS='two': set a positive"):
        default_threads()


def test_calibration_stages_follow_the_environment_too(monkeypatch):
    """The Fisher pass and the re-fit run inside `torch_threads(None)`: $CODESIGN_THREADS
    holds there as in training (before, None left torch at its own default, every core)."""
    from codesign.pruning import fisher
    from codesign.pruning.batching import torch_threads

    seen = []
    monkeypatch.setenv("CODESIGN_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(None):
            seen.append(torch.get_num_threads())
        assert seen == [1] and torch.get_num_threads() == 2  # restored afterwards
        monkeypatch.setattr(fisher, "_weighted_gradients",
                            lambda *a: seen.append(torch.get_num_threads()) or [])
        batch = {"input_ids": torch.ones(1, 4, dtype=torch.long),
                 "attention_mask": torch.ones(1, 4, dtype=torch.long)}

        class Structure:
            def prunable(self, model):
                return [("w", 0, "q")]

        model = torch.nn.Module()
        model.w = torch.nn.Parameter(torch.ones(4, 4))
        fisher.fisher_scores(model, Structure(), block_shape=(2, 2), calibration=[batch])
        assert seen == [1, 1]
    finally:
        torch.set_num_threads(before)
