"""GLUE readers (format traps of the real files) and the official metrics (hand-computed cases)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from codesign import glue
from codesign.glue import GlueDataError, compute_metrics, get_task, headline_metric, load_split


# --- the readers on the real files -----------------------------------------------------------

@pytest.mark.parametrize("task,split,rows", [
    ("sst2", "train", 67349), ("sst2", "dev", 872), ("cola", "train", 8551), ("cola", "dev", 1043),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408), ("stsb", "train", 5749), ("stsb", "dev", 1500),
    ("rte", "train", 2490), ("rte", "dev", 277), ("qnli", "dev", 5463)])
def test_row_counts_match_official_figures(glue_dir, task, split, rows):
    s = load_split(task, split, glue_dir=glue_dir)
    assert len(s) == rows == len(s.labels)
    assert (s.text_b is None) == (task in ("sst2", "cola"))
    if s.text_b is not None:
        assert len(s.text_b) == rows


def test_cola_has_no_header_first_row_kept(glue_dir):
    s = load_split("cola", "dev", glue_dir=glue_dir)
    assert s.text_a[0] == "The sailors rode the breeze clear of the rocks."
    assert s.labels[0] == 1
    # label counts from MANIFEST.tsv
    assert np.bincount(s.labels).tolist() == [322, 721]


def test_mrpc_bom_and_unbalanced_quotes(glue_dir):
    s = load_split("mrpc", "dev", glue_dir=glue_dir)
    assert not any("\ufeff" in t for t in s.text_a + s.text_b)
    # row 1's second sentence opens a quote it never closes: csv quoting would swallow rows
    assert s.text_b[0].startswith('"The foodservice pie business')
    assert np.bincount(s.labels).tolist() == [129, 279]
    assert s.labels.dtype == np.int64


def test_qnli_dev_only_string_labels(glue_dir):
    s = load_split("qnli", "dev", glue_dir=glue_dir)
    assert s.labels.dtype == np.int64
    assert np.bincount(s.labels).tolist() == [2702, 2761]  # entailment=0, not_entailment=1
    with pytest.raises(GlueDataError, match="no train split"):
        load_split("qnli", "train", glue_dir=glue_dir)


def test_rte_string_labels(glue_dir):
    s = load_split("rte", "dev", glue_dir=glue_dir)
    assert np.bincount(s.labels).tolist() == [146, 131]


def test_stsb_float_scores(glue_dir):
    s = load_split("stsb", "dev", glue_dir=glue_dir)
    assert s.labels.dtype == np.float32 and s.num_labels == 1
    assert s.labels[0] == pytest.approx(5.0) and s.labels[1] == pytest.approx(4.75)
    assert 0.0 <= s.labels.min() and s.labels.max() <= 5.0
    assert len(np.unique(s.labels)) > 10


def test_limit_is_seeded_and_reproducible(glue_dir):
    a = load_split("sst2", "train", glue_dir=glue_dir, limit=50, seed=3)
    b = load_split("sst2", "train", glue_dir=glue_dir, limit=50, seed=3)
    c = load_split("sst2", "train", glue_dir=glue_dir, limit=50, seed=4)
    assert len(a) == 50 and a.text_a == b.text_a and a.text_a != c.text_a
    assert np.array_equal(a.labels, b.labels)


def test_aliases_and_unknown_task():
    assert get_task("SST-2").name == "sst2" and get_task("sts-b").name == "stsb"
    assert headline_metric("mrpc") == "f1" and headline_metric("cola") == "matthews_corr"
    assert headline_metric("stsb") == "pearson" and headline_metric("rte") == "accuracy"
    with pytest.raises(GlueDataError, match="unknown GLUE task"):
        get_task("mnli")


def test_no_folder_is_one_line_error_naming_the_fixes(monkeypatch):
    monkeypatch.delenv(glue.GLUE_DIR_ENV, raising=False)
    with pytest.raises(GlueDataError) as err:
        glue.resolve_glue_dir(None)
    msg = str(err.value)
    assert "\n" not in msg and "--glue-dir" in msg and "CODESIGN_GLUE_DIR" in msg


def test_explicit_dir_wins_over_env(monkeypatch, tmp_path, glue_dir):
    monkeypatch.setenv(glue.GLUE_DIR_ENV, str(tmp_path / "nowhere"))
    assert glue.resolve_glue_dir(glue_dir) == glue_dir
    with pytest.raises(GlueDataError, match="not a folder"):
        glue.resolve_glue_dir(None)


def test_malformed_file_names_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text("index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\tonly\n")
    with pytest.raises(GlueDataError, match=r"dev.tsv:3"):
        load_split("rte", "dev", glue_dir=tmp_path)
    (tmp_path / "RTE" / "dev.tsv").write_text("index\ts1\ts2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(GlueDataError, match="not a valid rte label"):
        load_split("rte", "dev", glue_dir=tmp_path)


def test_synthetic_traps(tmp_path):
    # a BOM before the header, quotes inside fields, and a file with no trailing newline
    (tmp_path / "MRPC").mkdir()
    (tmp_path / "MRPC" / "train.tsv").write_bytes(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t1\t2\tHe said \"yes\tShe said no\"\n0\t3\t4\t'a'\tb".encode("utf-8"))
    s = load_split("mrpc", "train", glue_dir=tmp_path)
    assert s.text_a == ['He said "yes', "'a'"] and s.text_b == ['She said no"', "b"]
    assert s.labels.tolist() == [1, 0]


# --- metrics against hand-computed cases -----------------------------------------------------

def test_accuracy_hand_case():
    assert compute_metrics("sst2", np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == {"accuracy": 0.5}
    assert compute_metrics("rte", np.array([0, 0, 1]), np.array([0, 0, 1]))["accuracy"] == 1.0


def test_mrpc_f1_hand_case():
    # TP=2 FP=1 FN=1 TN=1: precision = recall = 2/3, F1 = 2/3, accuracy 3/5
    m = compute_metrics("mrpc", np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(0.6)


def test_cola_mcc_hand_case():
    # TP=2 FN=1 TN=1 FP=1: MCC = (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    m = compute_metrics("cola", np.array([1, 1, 0, 0, 1]), np.array([1, 1, 1, 0, 0]))
    assert m["matthews_corr"] == pytest.approx(1 / 6)
    # all one class: MCC is 0 (no information), not an error
    assert compute_metrics("cola", np.ones(4), np.array([1, 0, 1, 0]))["matthews_corr"] == 0.0


def test_stsb_pearson_spearman_hand_case():
    # deviations p = (-1, 0, 1), g = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9) = 9 / sqrt(84)
    m = compute_metrics("stsb", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["pearson"] == pytest.approx(9 / math.sqrt(84)) and m["spearmanr"] == pytest.approx(1.0)
    # rank differences d = (0, 1, -1): rho = 1 - 6*2/(3*8) = 0.5
    m = compute_metrics("stsb", np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert m["spearmanr"] == pytest.approx(0.5)
    assert compute_metrics("stsb", np.full(3, 2.0), np.array([1.0, 2.0, 3.0]))["pearson"] == 0.0


def test_metric_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        compute_metrics("sst2", np.array([1, 0]), np.array([1, 0, 1]))


def test_glue_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, codesign.glue; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the folder check a study runs before any training ------------------------------------------

def test_check_glue_dir_names_folder_missing_file_and_fixes(tmp_path):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(GlueDataError) as err:
        glue.check_glue_dir(tmp_path, ["sst2"])
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "SST-2/train.tsv" in msg
    assert "CODESIGN_GLUE_DIR" in msg and "glue_dir" in msg and "codesign glue fetch" in msg
    # dev alone is enough when only dev is asked for; the next task's missing folder is named
    assert glue.check_glue_dir(tmp_path, ["sst2"], splits=("dev",)) == tmp_path
    with pytest.raises(GlueDataError, match="RTE/dev.tsv"):
        glue.check_glue_dir(tmp_path, ["sst2", "rte"], splits=("dev",))


def test_check_glue_dir_on_the_real_folder_and_unknown_task(glue_dir, monkeypatch):
    assert glue.check_glue_dir(glue_dir, ["sst2", "mrpc", "SST-2"]) == glue_dir
    monkeypatch.setenv(glue.GLUE_DIR_ENV, str(glue_dir))
    assert glue.check_glue_dir(None, ["rte"]) == glue_dir
    with pytest.raises(GlueDataError, match="no train split"):
        glue.check_glue_dir(glue_dir, ["qnli"])  # studies fine-tune: train must exist
    with pytest.raises(GlueDataError, match="unknown GLUE task"):
        glue.check_glue_dir(glue_dir, ["mnli"])


def test_load_split_missing_file_same_error_as_the_check(tmp_path):
    with pytest.raises(GlueDataError, match=r"has no CoLA/dev.tsv: set \$CODESIGN_GLUE_DIR"):
        load_split("cola", "dev", glue_dir=tmp_path)


def test_an_excluded_sample_is_disjoint_and_leaves_the_other_unchanged(glue_dir):
    full = load_split("sst2", "train", glue_dir=glue_dir)
    rows = {(t, int(y)) for t, y in zip(full.text_a, full.labels)}
    train = load_split("sst2", "train", glue_dir=glue_dir, limit=512, seed=1)
    held = load_split("sst2", "train", glue_dir=glue_dir, limit=256, seed=4, exclude=(512, 1))
    assert len(train.text_a) == 512 and len(held.text_a) == 256
    # row numbers: the sample drawn before `exclude` existed, and none of them in `held`
    index = {t: i for i, t in enumerate(full.text_a)}
    taken = {index[t] for t in train.text_a}
    assert not taken & {index[t] for t in held.text_a}
    assert all((t, int(y)) in rows for t, y in zip(held.text_a, held.labels))
    again = load_split("sst2", "train", glue_dir=glue_dir, limit=256, seed=4, exclude=(512, 1))
    assert again.text_a == held.text_a
