"""The `codesign` command: parse, call, print.

One module per part of the data flow: `hardware` (simulate-gemm, simulate), `pruning` (prune,
masks), `accuracy`, `study` (sweep, pareto), `glue` (glue fetch). Each command parses its
options, calls one library function and prints; the library raises one-line ValueErrors that the
command turns into `CodesignError`. Heavy imports (torch, transformers, optuna) live inside the
commands that need them, so that `codesign --help` and `codesign simulate-gemm` start in well
under a second. This package is the only place that configures logging: `main` sends the
library's "codesign" logger (INFO and above) to stderr.
"""
from __future__ import annotations

import logging
import sys

import click

from codesign.cli.common import CodesignError


class _StderrHandler(logging.StreamHandler):
    """Writes to the current sys.stderr (looked up at each record, so a swapped stream, as in
    click's test runner, is followed)."""

    @property
    def stream(self):  # noqa: D401 - a property
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; sys.stderr wins
        pass


def _log_to_stderr() -> None:
    """The "codesign" logger at INFO to stderr, plain messages; a second call adds nothing."""
    logger = logging.getLogger("codesign")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
def main() -> None:
    """Hardware/algorithm co-design of block-sparse BERT-class transformers."""
    _log_to_stderr()


def _register() -> None:
    from codesign.cli import accuracy, glue, hardware, pruning, study

    for command in (hardware.simulate_gemm, hardware.simulate_model, pruning.prune_cmd,
                    pruning.masks_cmd, accuracy.accuracy_cmd, study.sweep_command,
                    study.pareto_command, glue.glue_group):
        main.add_command(command)


_register()

__all__ = ["CodesignError", "main"]
