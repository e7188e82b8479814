"""The `codesign` command: parse, call, print.

Heavy imports (torch, transformers, optuna) live inside the commands that need them, so that
`codesign --help` and `codesign simulate-gemm` start in well under a second.
"""
from __future__ import annotations

import click


class CodesignError(click.ClickException):
    """A user-facing one-line error (bad file, bad key, missing data)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
def main() -> None:
    """Hardware/algorithm co-design of block-sparse BERT-class transformers."""


# --- hardware model: simulate-gemm, simulate (owned by the hwmodels developer) ---------------


# --- pruning and masks: prune, masks (owned by the pruning developer) ------------------------


# --- accuracy (owned by the accuracy developer) ----------------------------------------------


# --- studies: sweep, pareto (owned by the study developer) -----------------------------------


if __name__ == "__main__":
    main()
