"""Shared test settings: where the GLUE files are, and an isolated accuracy cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GLUE_DIR = ROOT.parent / "shared" / "data" / "glue"

os.environ.setdefault("CODESIGN_GLUE_DIR", str(DEFAULT_GLUE_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    path = Path(os.environ["CODESIGN_GLUE_DIR"])
    if not (path / "SST-2" / "dev.tsv").exists():
        pytest.fail(f"GLUE folder {path} has no SST-2/dev.tsv: set CODESIGN_GLUE_DIR")
    return path
