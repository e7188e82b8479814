"""Session fixtures shared by the study tests and the notebook tests: one run of the tiny study
(studies/tiny.yaml, quick accuracy recipe) into a session-scoped accuracy cache, so each
(block, ratio) is measured once for the whole session."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "studies" / "tiny.yaml"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("accuracy-cache")


@pytest.fixture(scope="session")
def cache(cache_dir):
    from codesign.accuracy import AccuracyCache

    return AccuracyCache(cache_dir)


@pytest.fixture(scope="session")
def study(glue_dir):
    from codesign.study import load_study

    return load_study(TINY)


@pytest.fixture(scope="session")
def reference(study, cache, tmp_path_factory):
    """The first, complete run of the tiny study (workers=1)."""
    from codesign.sweep import run_sweep

    return run_sweep(study, tmp_path_factory.mktemp("reference"), workers=1, cache=cache)
