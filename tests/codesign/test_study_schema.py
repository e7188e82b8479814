"""The study schema: valid files load, malformed ones give ONE located line (file:line key: why;
allowed ...), never a traceback, including hardware points that do not fit the board."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from codesign.study import StudyError, load_study

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
# a valid study; each test breaks one thing
name: schema_test
question: which block is fastest?
model:
  name: minilm-l6
  seq_len: 64
  batch: 1
tasks:
  - sst2
pruning:
  method: magnitude
  block_shapes:
    - 16x16
    - 32x32
  compression:
    - 2
    - 4
accuracy:
  recipe: {base: quick}
  stages:
    - fidelity: oneshot
    - fidelity: retrain
      promote: front
hardware:
  board: zcu102
  pe_array:
    - 16x16
    - 32x32
  dataflow:
    - ws
    - os
  sparse_strategy: tile-skip
objectives:
  - latency_ms: min
  - accuracy: max
constraints:
  max_accuracy_drop: 1.0
search:
  method: grid
"""


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[nth]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> StudyError:
    path = _write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    err = info.value
    msg = str(err)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{err.file}:{err.line}") or err.line is None, msg
    assert err.file.endswith("study.yaml")
    return err


def test_base_study_is_valid(tmp_path):
    study = load_study(_write(tmp_path, BASE))
    assert study.pruning.ratios == [0.5, 0.75]
    assert len(study.hardware.combinations()) == 4
    assert study.objective_pairs == [("latency_ms", "min"), ("accuracy", "max")]


def test_shipped_studies_are_valid():
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        study = load_study(path)
        assert study.question, f"{path.name}: the study must say what question it answers"


# (mutation old -> new, needle for the expected line (in the mutated text), expected key,
#  fragments the message must contain)
CASES = {
    "pe_array item": ("    - 32x32\n  dataflow", "    - 48y48\n  dataflow", "48y48",
                      "hardware.pe_array[1]", ["'48y48'", "ROWSxCOLS"]),
    "pe_array too big": ("    - 32x32\n  dataflow", "    - 128x128\n  dataflow", "128x128",
                         "hardware.pe_array[1]", ["does not fit zcu102", "DSP", "2,520"]),
    "dataflow": ("    - os", "    - rs", "- rs", "hardware.dataflow[1]", ["'rs'", "ws, os"]),
    "sparse strategy": ("sparse_strategy: tile-skip", "sparse_strategy: skip-tiles",
                        "sparse_strategy", "hardware.sparse_strategy",
                        ["tile-skip, compact"]),
    "block shape": ("    - 32x32\n  compression", "    - 32by32\n  compression", "32by32",
                    "pruning.block_shapes[1]", ["ROWSxCOLS"]),
    "compression": ("    - 4\naccuracy", "    - 0.5\naccuracy", "- 0.5",
                    "pruning.compression[1]", ["1 (dense) to 1000"]),
    "unknown task": ("  - sst2", "  - mnli", "- mnli", "tasks[0]", ["sst2", "cola"]),
    "unknown key": ("  seq_len: 64", "  seq_len: 64\n  seqlen: 64", "seqlen:", "model.seqlen",
                    ["unknown key", "seq_len"]),
    "fidelity": ("    - fidelity: retrain", "    - fidelity: distill", "distill",
                 "accuracy.stages[1].fidelity", ["oneshot, calibrated, retrain, rgl"]),
    "objective metric": ("  - accuracy: max", "  - power_w: max", "power_w",
                         "objectives[1].metric", ["latency_ms", "energy_mj"]),
    "objective direction": ("  - accuracy: max", "  - accuracy: highest", "highest",
                            "objectives[1].direction", ["min, max"]),
    "board": ("  board: zcu102", "  board: zcu104", "zcu104", "hardware.board",
              ["zcu102", "ultra96v2"]),
    "nsga2 without budget": ("  method: grid", "  method: nsga2", "search:", "search",
                             ["trials"]),
    "recipe field": ("  recipe: {base: quick}", "  recipe: {base: quick, epochs: 3}",
                     "recipe:", "accuracy.recipe", ["'epochs'", "dense_epochs"]),
    "missing board": ("  board: zcu102\n", "", "hardware:", "hardware.board",
                      ["required"]),
    "negative seq_len": ("  seq_len: 64", "  seq_len: -4", "seq_len", "model.seq_len",
                         ["greater than or equal to 1"]),
    "buffer too big": ("  sparse_strategy: tile-skip",
                       "  sparse_strategy: tile-skip\n  buffers_kib:\n    weight:\n"
                       "      - 256\n      - 65536", "65536",
                       "hardware.buffers_kib.weight[1]", ["BRAM36", "912"]),
    "precision": ("  sparse_strategy: tile-skip", "  sparse_strategy: tile-skip\n"
                  "  precision: int4", "int4", "hardware.precision",
                  ["int8, int16, fp16"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_study_names_file_line_key_and_allowed(tmp_path, case):
    old, new, needle, key, fragments = CASES[case]
    assert old in BASE, case
    text = BASE.replace(old, new, 1)
    err = _error(tmp_path, text)
    assert err.key == key, str(err)
    assert err.line == _line_of(text, needle), str(err)
    for frag in fragments:
        assert frag in str(err), (frag, str(err))


def test_invalid_yaml_reports_its_line(tmp_path):
    text = BASE.replace("  - sst2", "  - [sst2")
    err = _error(tmp_path, text)
    assert "not valid YAML" in str(err)
    assert err.line is not None and abs(err.line - _line_of(text, "[sst2")) <= 2


def test_hex_looking_block_shape_says_quote_it(tmp_path):
    # YAML reads 0x4 as the integer 4: the error must explain that
    err = _error(tmp_path, BASE.replace("    - 32x32\n  compression", "    - 0x4\n  compression"))
    assert err.key == "pruning.block_shapes[1]" and "quotes" in str(err)


def test_cli_prints_one_line_without_traceback(tmp_path):
    path = _write(tmp_path, BASE.replace("    - os", "    - rs"))
    proc = subprocess.run([sys.executable, "-m", "codesign.cli", "sweep", str(path), "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.search(r"study\.yaml:\d+ hardware\.dataflow\[1\]", lines[0]), \
        proc.stderr


def test_dry_run_prints_design_space(tmp_path):
    path = _write(tmp_path, BASE)
    proc = subprocess.run([sys.executable, "-m", "codesign.cli", "sweep", str(path), "--dry-run",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # 4 accelerators x (1 dense + 2 blocks x 2 ratios) = 20 points
    assert "design points: 20 (0 already stored" in proc.stdout, proc.stdout
    assert "pe_array: 16x16, 32x32" in proc.stdout
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_fit_of_reports_the_board_check_with_its_numbers():
    """fit_of: hwmodels' structured fit (assess_fit), every over-used resource with its numbers."""
    from hwmodels import load_board

    from codesign.study import fit_of

    small = load_board("zcu102", {"pe_array": {"rows": 16, "cols": 16}}, check_fit=False)
    big = load_board("zcu102", {"pe_array": {"rows": 128, "cols": 128}}, check_fit=False)
    ok, bad = fit_of(small), fit_of(big)
    assert ok.fits and ok.message == "" and ok.resources["dsp"]["used"] < 2520
    assert not bad.fits and bad.resources["dsp"]["used"] > bad.resources["dsp"]["available"]
    assert bad.message.startswith("DSP needs") and "zcu102" not in bad.message.lower()
    assert str(bad.resources["dsp"]["used"]) in bad.message.replace(",", "")


def test_dry_run_stops_on_a_glue_folder_without_the_task(tmp_path):
    """The GLUE folder is checked when the study is validated, before any training."""
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\n")  # no dev.tsv
    path = _write(tmp_path, BASE.replace("tasks:\n", f"glue_dir: {tmp_path / 'glue'}\ntasks:\n"))
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert err.value.key == "glue_dir" and err.value.line == _line_of(BASE, "tasks:")
    assert "SST-2/dev.tsv" in str(err.value) and "codesign glue fetch" in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "codesign.cli", "sweep", str(path), "--dry-run",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "SST-2/dev.tsv" in proc.stderr and "design points" not in \
        proc.stdout


def test_calibrated_method_and_first_stage_go_together(tmp_path):
    err = _error(tmp_path, BASE.replace("  method: magnitude", "  method: calibrated", 1))
    assert "pruning.method calibrated goes with a first accuracy stage of fidelity calibrated" \
        in str(err)
    err = _error(tmp_path, BASE.replace("    - fidelity: oneshot", "    - fidelity: calibrated", 1))
    assert "write both, or neither" in str(err)
    both = BASE.replace("  method: magnitude", "  method: calibrated", 1).replace(
        "    - fidelity: oneshot", "    - fidelity: calibrated", 1)
    path = tmp_path / "both.yaml"
    path.write_text(both)
    assert load_study(path).pruning.method == "calibrated"
