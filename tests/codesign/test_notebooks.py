"""Every notebook in notebooks/ runs top to bottom (nbclient, kernel python3) so none can rot, and
what pareto_zcu102.ipynb shows is checked against the results folder it reads.

pareto_zcu102.ipynb reads the results folder of a real run of studies/tiny.yaml (the session
fixture `reference` in conftest_results.py): its printed summary, its tables' rows, its three
figures and its generated answer must be those of that folder's points.csv and study.yaml.
hardware_model.ipynb needs no results folder: it must run and draw.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _execute(path: Path, results_dir: Path, monkeypatch) -> list[dict]:
    """Run the notebook; returns the outputs of its code cells, one list per cell."""
    monkeypatch.setenv("CODESIGN_RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    return [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]


def _data(outputs: list[dict], mime: str) -> list[str]:
    return [o["data"][mime] for o in outputs if mime in o.get("data", {})]


def _stdout(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o.get("name") == "stdout")


def _row_labels(html: str) -> list[int]:
    """The index labels of a DataFrame's HTML rows (tbody only)."""
    body = html.split("<tbody>", 1)[1]
    return [int(v) for v in re.findall(r"<tr>\s*<th>(\d+)</th>", body)]


@pytest.fixture(scope="module")
def results_dir(reference) -> Path:
    return Path(reference.out_dir)


@pytest.fixture(scope="module")
def pareto_cells(results_dir):
    with pytest.MonkeyPatch.context() as mp:
        return _execute(ROOT / "notebooks" / "pareto_zcu102.ipynb", results_dir, mp)


@pytest.fixture(scope="module")
def folder(results_dir):
    from codesign.report import load_results

    return load_results(results_dir)


def test_the_expected_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"pareto_zcu102.ipynb", "hardware_model.ipynb"} <= names


def test_pareto_notebook_reads_the_folder(pareto_cells, folder, results_dir):
    points, study = folder
    assert len(points) > 0 and points["pareto"].any()
    errors = [o for cell in pareto_cells for o in cell if o.get("output_type") == "error"]
    assert not errors
    assert _stdout(pareto_cells[0]).splitlines() == [
        f"study {study['name']!r}: {len(points)} design points from {results_dir}",
        f"question: {study['question']}"]


def test_pareto_notebook_tables_hold_the_folders_rows(pareto_cells, folder):
    points, _ = folder
    (first,) = _data(pareto_cells[1], "text/html")
    shown = points.loc[_row_labels(first), "latency_ms"]  # the 12 fastest, fastest first
    assert len(shown) == min(12, len(points)) and shown.is_monotonic_increasing
    assert shown.tolist() == sorted(points["latency_ms"])[:len(shown)]
    for column in ("block_shape", "compression", "array", "latency_ms", "accuracy", "pareto"):
        assert f"<th>{column}</th>" in first, column
    (front,) = _data(pareto_cells[4], "text/html")
    assert sorted(_row_labels(front)) == points.index[points["pareto"]].tolist()
    assert "<th>speedup</th>" in front and "<th>meets_constraints</th>" in front


def test_pareto_notebook_draws_its_three_figures(pareto_cells):
    figures = [len(_data(cell, "image/png")) for cell in pareto_cells]
    assert figures == [0, 0, 1, 1, 0, 1, 0]  # pareto, speedup, one front per block shape


def test_pareto_notebook_answer_is_the_report(pareto_cells, folder):
    from codesign.report import render_report

    points, study = folder
    (answer,) = _data(pareto_cells[-1], "text/markdown")
    assert answer == render_report(points, study).split("## Figures")[0]
    assert "## Answer (SST-2)" in answer and "- Fastest design that meets them:" in answer


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != "pareto_zcu102.ipynb"],
                         ids=lambda p: p.name)
def test_other_notebooks_execute_and_draw(path, results_dir, monkeypatch):
    cells = _execute(path, results_dir, monkeypatch)
    assert not [o for cell in cells for o in cell if o.get("output_type") == "error"]
    assert any(_data(cell, "image/png") for cell in cells), f"{path.name} drew no figure"


def test_notebooks_are_committed_without_outputs():
    # outputs would bake one machine's (or the synthetic folder's) figures into the repository
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
