"""`fetch_glue` writes the official GLUE TSV layout from a `datasets`-format copy (a small local
fixture here, never the network), and fails at once, in one line, when it cannot fetch."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from codesign import glue_fetch
from codesign.glue import GlueDataError, check_glue_dir, load_split
from codesign.glue_fetch import GlueFetchError, fetch_glue

# A few rows per task in the Hugging Face GLUE schema (column names, ClassLabel ids, idx), with
# the traps: quotes, a tab, line breaks of several kinds, a trailing space.
SPLITS = {
    ("sst2", "train"): {"sentence": ["a charming journey . ", "bleak\tand desperate", "fine"],
                        "label": [1, 0, 1], "idx": [0, 1, 2]},
    ("sst2", "validation"): {"sentence": ["good", "bad\u2028news"], "label": [1, 0],
                             "idx": [0, 1]},
    ("cola", "train"): {"sentence": ["The sailors rode the breeze.", "Rope the stretch."],
                        "label": [1, 0], "idx": [0, 1]},
    ("cola", "validation"): {"sentence": ["He left."], "label": [0], "idx": [0]},
    ("mrpc", "train"): {"sentence1": ['He said "no.', "A\nB"], "sentence2": ["x", "y"],
                        "label": [1, 0], "idx": [0, 1]},
    ("mrpc", "validation"): {"sentence1": ["s1"], "sentence2": ["s2"], "label": [1], "idx": [7]},
    ("stsb", "train"): {"sentence1": ["A man dances.", "A child rides."],
                        "sentence2": ["A man is dancing.", "A kid rides."],
                        "label": [5.0, 3.8], "idx": [0, 1]},
    ("stsb", "validation"): {"sentence1": ["a"], "sentence2": ["b"], "label": [0.25],
                             "idx": [0]},
    ("rte", "train"): {"sentence1": ["p1", "p2"], "sentence2": ["h1", "h2"], "label": [0, 1],
                       "idx": [0, 1]},
    ("rte", "validation"): {"sentence1": ["p"], "sentence2": ["h"], "label": [1], "idx": [0]},
    ("qnli", "validation"): {"question": ["What?", "Who?"], "sentence": ["That.", "Him."],
                             "label": [1, 0], "idx": [0, 1]},
}
TASKS = ("sst2", "cola", "mrpc", "stsb", "rte", "qnli")


def _loader(make=dict, calls=None):
    def load(config: str, split: str):
        if calls is not None:
            calls.append((config, split))
        return make(SPLITS[config, split])
    return load


def _check_written(root, paths):
    assert sorted(p.relative_to(root).as_posix() for p in paths) == sorted(
        ["SST-2/train.tsv", "SST-2/dev.tsv", "CoLA/train.tsv", "CoLA/dev.tsv", "MRPC/train.tsv",
         "MRPC/dev.tsv", "STS-B/train.tsv", "STS-B/dev.tsv", "RTE/train.tsv", "RTE/dev.tsv",
         "QNLI/dev.tsv"])
    sst = load_split("sst2", "train", glue_dir=root)
    assert sst.text_a == ["a charming journey .", "bleak and desperate", "fine"]
    assert sst.labels.tolist() == [1, 0, 1]
    assert load_split("sst2", "dev", glue_dir=root).text_a == ["good", "bad news"]
    cola = load_split("cola", "train", glue_dir=root)
    assert cola.text_a == ["The sailors rode the breeze.", "Rope the stretch."]
    assert cola.labels.tolist() == [1, 0]
    mrpc = load_split("mrpc", "train", glue_dir=root)
    assert mrpc.text_a == ['He said "no.', "A B"] and mrpc.text_b == ["x", "y"]
    assert mrpc.labels.tolist() == [1, 0]
    stsb = load_split("stsb", "train", glue_dir=root)
    assert stsb.labels.dtype == np.float32
    assert stsb.labels.tolist() == pytest.approx([5.0, 3.8])
    assert stsb.text_b == ["A man is dancing.", "A kid rides."]
    assert load_split("rte", "train", glue_dir=root).labels.tolist() == [0, 1]
    qnli = load_split("qnli", "dev", glue_dir=root)
    assert qnli.text_a == ["What?", "Who?"] and qnli.labels.tolist() == [1, 0]
    for task in TASKS:
        for split, hub in (("train", "train"), ("dev", "validation")):
            if (task, hub) in SPLITS:
                assert len(load_split(task, split, glue_dir=root)) == len(SPLITS[task, hub]["idx"])


def test_writes_the_official_layout_read_back_by_load_split(tmp_path):
    calls = []
    paths = fetch_glue(tmp_path, load=_loader(calls=calls))
    _check_written(tmp_path, paths)
    assert ("qnli", "train") not in calls  # only the splits codesign.glue reads
    # the official quirks: MRPC's byte-order mark, CoLA without a header, STS-B's %.3f scores
    assert (tmp_path / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t")
    assert (tmp_path / "CoLA" / "train.tsv").read_text().splitlines()[1] == \
        "-\t0\t*\tRope the stretch."
    assert (tmp_path / "STS-B" / "train.tsv").read_text().splitlines()[2].endswith("\t3.800")
    assert (tmp_path / "RTE" / "dev.tsv").read_text().splitlines() == [
        "index\tsentence1\tsentence2\tlabel", "0\tp\th\tnot_entailment"]
    assert check_glue_dir(tmp_path, ["sst2", "cola", "mrpc", "stsb", "rte"]) == tmp_path


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None,
                    reason="the `datasets` package (optional extra `hub`) is not installed")
def test_accepts_real_datasets_objects(tmp_path):
    import datasets

    _check_written(tmp_path, fetch_glue(tmp_path, load=_loader(datasets.Dataset.from_dict)))


def test_tasks_subset_and_unknown_task_checked_before_loading(tmp_path):
    calls = []
    paths = fetch_glue(tmp_path / "g", ["SST-2", "rte"], load=_loader(calls=calls))
    assert [p.parent.name for p in paths] == ["SST-2", "SST-2", "RTE", "RTE"]
    assert calls == [("sst2", "train"), ("sst2", "validation"), ("rte", "train"),
                     ("rte", "validation")]
    calls.clear()
    with pytest.raises(GlueDataError, match="unknown GLUE task 'mnli'"):
        fetch_glue(tmp_path / "h", ["sst2", "mnli"], load=_loader(calls=calls))
    assert calls == [] and not (tmp_path / "h").exists()


def test_unlabelled_split_is_refused(tmp_path):
    def load(config, split):
        return {"sentence": ["x"], "label": [-1], "idx": [0]}  # the hub's test-split labels

    with pytest.raises(GlueFetchError, match=r"sst2 train: labels \[-1\] outside 0..1"):
        fetch_glue(tmp_path, ["sst2"], load=load)
    assert not (tmp_path / "SST-2").exists()


@pytest.mark.parametrize("var", glue_fetch.OFFLINE_ENV)
def test_offline_fails_at_once_in_one_line(tmp_path, monkeypatch, var):
    for name in glue_fetch.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(var, "1")
    with pytest.raises(GlueFetchError) as err:
        fetch_glue(tmp_path / "g", ["sst2"])
    msg = str(err.value)
    assert "\n" not in msg and var in msg and "CODESIGN_GLUE_DIR" in msg
    assert not (tmp_path / "g").exists()


def test_without_datasets_fails_at_once_in_one_line(tmp_path, monkeypatch):
    for name in glue_fetch.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # import fails, no network
    with pytest.raises(GlueFetchError) as err:
        fetch_glue(tmp_path / "g", ["sst2"])
    msg = str(err.value)
    assert "\n" not in msg and "`datasets`" in msg and ".[hub]" in msg
    assert "CODESIGN_GLUE_DIR" in msg and not (tmp_path / "g").exists()


def test_cli_offline_says_so_in_one_line(tmp_path):
    """`codesign glue fetch` offline: one line naming the switch and the local-folder fix."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "codesign.cli", "glue", "fetch",
                           str(tmp_path / "glue"), "--tasks", "sst2"],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "HF_HUB_OFFLINE" in lines[0] and "CODESIGN_GLUE_DIR" in lines[0]
    assert not (tmp_path / "glue").exists()
