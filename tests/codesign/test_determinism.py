"""Same seed, same result: a fresh classification head, a dense training run and a whole study
(studies/tiny.yaml, quick recipe) repeat bit for bit on a CPU at a given thread count."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"
# wall-clock keys of a record's provenance: the only fields two runs may differ in
_WALL_CLOCK = {"seconds", "dense_seconds", "created"}


def _params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_fresh_head_is_seeded():
    from codesign.checkpoints import load_model

    a, b, c = (load_model("minilm-l6", task="sst2", head_seed=s).model for s in (0, 0, 1))
    pa, pb, pc = _params(a), _params(b), _params(c)
    assert all(torch.equal(pa[n], pb[n]) for n in pa)
    assert not torch.equal(pa["classifier.weight"], pc["classifier.weight"])
    # only the fresh head depends on the seed; the checkpoint's encoder weights do not
    assert [n for n in pa if not torch.equal(pa[n], pc[n])] == ["classifier.weight"]
    assert torch.count_nonzero(pa["classifier.bias"]) == 0


def _train(seed: int, threads: int = 1):
    from codesign.checkpoints import load_model
    from codesign.glue import load_split
    from codesign.pruning.train import TrainConfig, finetune

    loaded = load_model("minilm-l6", task="sst2", head_seed=seed)
    split = load_split("sst2", "train", limit=48, seed=0)
    config = TrainConfig(epochs=1, lr=3e-4, batch_size=16, max_seq_len=32, seed=seed,
                         threads=threads)
    stats = finetune(loaded.model, loaded.tokenizer, split, config, progress=False)
    assert stats.steps == 3 and stats.threads == threads and stats.extra["batching"] == "bucket"
    return _params(loaded.model)


def test_dense_training_is_bit_identical_for_one_seed(glue_dir):
    first, second, other = _train(0), _train(0), _train(1)
    assert all(torch.equal(first[n], second[n]) for n in first)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])
    # the training moved the encoder (not a test of an untrained model)
    assert not torch.equal(first["bert.encoder.layer.0.attention.self.query.weight"],
                           other["bert.encoder.layer.0.attention.self.query.weight"])


def _normalised(points: pd.DataFrame, cache_dir: Path, out_dir: Path) -> pd.DataFrame:
    """points.csv with the wall-clock provenance fields removed and the run's own folders named
    by placeholders (each run has its own cache and output folder)."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in _WALL_CLOCK}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(cache_dir), "<cache>").replace(str(out_dir), "<out>")
        return value

    out = points.copy()
    out["provenance"] = [json.dumps(clean(json.loads(p)), sort_keys=True)
                         for p in out["provenance"]]
    return out


@pytest.mark.slow
def test_tiny_study_twice_from_empty_caches_gives_identical_points(glue_dir, tmp_path,
                                                                   monkeypatch):
    from codesign.accuracy import AccuracyCache
    from codesign.study import load_study
    from codesign.sweep import run_sweep

    tables = []
    for run in ("a", "b"):
        cache_dir, out_dir = tmp_path / f"cache-{run}", tmp_path / f"out-{run}"
        cache_dir.mkdir()
        monkeypatch.setenv("CODESIGN_CACHE_DIR", str(cache_dir))
        run_sweep(load_study(TINY), out_dir, cache=AccuracyCache(cache_dir))
        points = pd.read_csv(out_dir / "points.csv")
        tables.append(_normalised(points, cache_dir, out_dir))
    a, b = tables
    assert len(a) == len(b) >= 8 and list(a.columns) == list(b.columns)
    assert a["accuracy"].notna().all()
    # every column, every row, exactly (wall-clock provenance fields removed above)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    dense = json.loads(a["provenance"][0])["accuracy"]
    assert math.isfinite(a["accuracy_dense"][0]) and dense  # provenance was really compared
