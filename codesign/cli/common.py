"""What the commands share: the one user-facing error type, the one-line forms of a library
error's text, and the --block option's parser."""
from __future__ import annotations

import click

from codesign.errors import first_line, one_line


class CodesignError(click.ClickException):
    """A user-facing one-line error (bad file, bad key, missing data)."""


def block_option(text: str, option: str = "--block"):
    """A block-shape option's value as an hwmodels.BlockShape; CodesignError naming the option."""
    from hwmodels import BlockShape

    try:
        return BlockShape.parse(text)
    except ValueError as err:
        raise CodesignError(f"{option}: {err}") from None
