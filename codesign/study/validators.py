"""The shared pieces of the study schema's validators: scalar-or-list values, located list-item
errors and the strict, frozen pydantic base model.

What is modelled: a study key may hold one value or a list of values to sweep; validators walk
both alike (`_items`), and an error about a list item carries the item's index as an
`@INDEX@ ` prefix that codesign.study.loading moves into the key path (`key[INDEX]`). What is
ignored: nothing here knows a key's meaning (codesign.study.schema, codesign.study.pruning_spec).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _items(value: Any):
    """(index or None, item) of a scalar-or-list value; errors name the index of a list item."""
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    return [(None, value)]


def _item_error(index: int | None, message: str) -> ValueError:
    # the index travels in the text; load_study moves it into the key path
    return ValueError(message if index is None else f"@{index}@ {message}")


def _choices(value: Any, allowed: tuple[str, ...], what: str,
             normalise: Any = None) -> list[str]:
    """A scalar-or-list value checked against `allowed` (after `normalise`), as a list."""
    out = []
    for i, x in _items(value):
        norm = normalise(str(x)) if normalise else x
        if norm not in allowed:
            raise _item_error(i, f"{x!r} is not {what}; allowed: {', '.join(allowed)}")
        out.append(norm)
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
