"""The one-line forms of an error's text, for messages that quote another library's error."""
from __future__ import annotations

#: the longest first line kept from another library's error
FIRST_LINE_CHARS = 300


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none), at most
    FIRST_LINE_CHARS characters: what a one-line error quotes of a library's multi-line one."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:FIRST_LINE_CHARS]


def one_line(exc: BaseException) -> str:
    """An error's whole text on one line (runs of white space, newlines included, folded)."""
    return " ".join(str(exc).split())
