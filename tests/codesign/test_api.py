"""The library surface: `codesign.__all__` names real objects of their modules; importing the
package is light; the library logs through the "codesign" logger and configures no handler."""
from __future__ import annotations

import importlib
import inspect
import pathlib
import subprocess
import sys

import codesign

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_public_name_is_its_module_object():
    assert codesign.__all__ == sorted(codesign.__all__) and "run_sweep" in codesign.__all__
    for name in codesign.__all__:
        obj = getattr(codesign, name)
        home = importlib.import_module(f"codesign.{codesign._HOMES[name]}")
        assert obj is getattr(home, name)
        assert callable(obj) and inspect.getdoc(obj), name


def test_import_is_light():
    code = "import codesign, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120).stdout.split()
    assert out == ["False", "False"]


def test_library_configures_no_logging():
    """Only the CLI may add handlers or quiet other libraries' loggers."""
    offenders = []
    for path in (ROOT / "codesign").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "codesign").parts:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("basicConfig(", "optuna.logging.set_verbosity", "addHandler("):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []
