"""Every notebook in notebooks/ runs top to bottom (nbclient, kernel python3) so none can rot.

pareto_zcu102.ipynb reads a results folder: that of a real run of studies/tiny.yaml (the session
fixture `reference` in conftest.py), so the notebook is checked against what the sweep writes.
hardware_model.ipynb needs no results folder.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def results_dir(reference) -> Path:
    return reference.out_dir


def test_the_expected_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"pareto_zcu102.ipynb", "hardware_model.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, results_dir, monkeypatch):
    monkeypatch.setenv("CODESIGN_RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"


def test_notebooks_are_committed_without_outputs():
    # outputs would bake one machine's (or the synthetic folder's) figures into the repository
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
