"""Frozen values made and extended cheaply: helpers for the per-op objects of a simulation.

A cold design point builds a few hundred frozen dataclasses (fold structures, schedules,
action counts) and derives a few arrays from each on first use. Both are plain Python costs
paid per op: a frozen dataclass's generated ``__init__`` sets every field through
``object.__setattr__`` (about 0.1 us a field), and Python 3.11's ``functools.cached_property``
takes a lock on every first use. What is kept: the objects are the same (same class, same
attributes, same equality); what is dropped: ``__post_init__`` (the classes built here have
none) and thread-safety of the first use of a derived attribute (two threads may both compute
it; both get equal values, one is kept).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable


@functools.lru_cache(maxsize=None)
def _field_names(cls: type) -> frozenset:
    if hasattr(cls, "__post_init__"):  # its checks would be skipped: build it the usual way
        raise TypeError(f"frozen.make({cls.__name__}): the class has a __post_init__; call "
                        f"{cls.__name__}(...) instead")
    return frozenset(f.name for f in dataclasses.fields(cls))


def make(cls: type, /, **fields: Any):
    """``cls(**fields)`` for a dataclass without ``__post_init__``, every field given by name
    (defaults included): the instance's attributes are set at once instead of one by one."""
    if fields.keys() != _field_names(cls):
        missing = sorted(_field_names(cls) ^ fields.keys())
        raise TypeError(f"frozen.make({cls.__name__}): give every field exactly once; "
                        f"mismatched: {', '.join(missing)}")
    return adopt(cls, fields)


def adopt(cls: type, fields: dict[str, Any]):
    """`make` without its field-name check, for a caller that builds `fields` from the class's
    own fields (e.g. a copy of another instance's): the instance takes the dict's entries."""
    out = object.__new__(cls)
    out.__dict__.update(fields)
    return out


class derived:  # noqa: N801 (used as a decorator, like functools.cached_property)
    """``functools.cached_property`` without its lock: the value is computed on first use and
    stored in the instance's ``__dict__``, where later lookups find it without calling this
    descriptor. For immutable objects whose derived values may also be set up front (by
    assigning ``obj.__dict__[name]``)."""

    def __init__(self, func: Callable[[Any], Any]):
        self.func = func
        self.__doc__ = func.__doc__
        self.name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value
