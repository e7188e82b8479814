"""What the commands share: the one user-facing error type, the one-line forms of a library
error's text, and the --block option's parser."""
from __future__ import annotations

import click


class CodesignError(click.ClickException):
    """A user-facing one-line error (bad file, bad key, missing data)."""


def first_line(err: BaseException) -> str:
    """The first line of an error's text, or its type name when it has no text."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def one_line(err: BaseException) -> str:
    """An error's whole text on one line (runs of white space, newlines included, folded)."""
    return " ".join(str(err).split())


def block_option(text: str, option: str = "--block"):
    """A block-shape option's value as an hwmodels.BlockShape; CodesignError naming the option."""
    from hwmodels import BlockShape

    try:
        return BlockShape.parse(text)
    except ValueError as err:
        raise CodesignError(f"{option}: {err}") from None
