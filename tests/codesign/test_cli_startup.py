"""The CLI starts light: importing it, `codesign --help` and `codesign simulate-gemm` load no
torch (checked in a fresh interpreter), and `main` sends the "codesign" logger to stderr."""
from __future__ import annotations

import logging
import subprocess
import sys

from click.testing import CliRunner

from codesign.cli import main

_CHECK = """
import sys
from click.testing import CliRunner
import codesign.cli
assert 'torch' not in sys.modules, 'import codesign.cli loaded torch'
for args in (['--help'], ['simulate-gemm', '--m', '8', '--k', '8', '--n', '8'], ['glue', '--help']):
    result = CliRunner().invoke(codesign.cli.main, args)
    assert result.exit_code == 0, result.output
    assert 'torch' not in sys.modules, f'codesign {args[0]} loaded torch'
print('ok')
"""


def test_help_and_simulate_gemm_import_no_torch():
    proc = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "codesign.cli", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "simulate-gemm" in proc.stdout and "glue" in proc.stdout


def test_main_logs_the_library_to_stderr_once():
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(main, ["pareto", "--help"]).exit_code == 0
    logger = logging.getLogger("codesign")
    assert logger.level == logging.INFO
    assert sum(type(h).__name__ == "_StderrHandler" for h in logger.handlers) == 1

    @main.command("_log_probe", hidden=True)
    def _probe() -> None:
        logging.getLogger("codesign.probe").info("probe message")

    try:
        result = runner.invoke(main, ["_log_probe"])
    finally:
        main.commands.pop("_log_probe")
    assert result.exit_code == 0
    assert result.stderr == "probe message\n" and result.stdout == ""
