"""Helpers for result classes that are dataclasses *and* :class:`~layerscope.results.AnalysisResult`.

``AnalysisResult`` declares ``metrics`` and ``parameters`` as read-only properties. A dataclass
subclass that stores them as fields cannot set them (the base class' property is a data
descriptor, so it wins over the instance attribute and has no setter). :func:`plain_fields`
shadows those properties in the subclass with a plain class attribute, so the dataclass fields
are ordinary instance attributes again.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

T = TypeVar("T", bound=type)

__all__ = ["plain_fields"]


def plain_fields(cls: T) -> T:
    """Class decorator (outermost, above ``@dataclass``): let fields named like properties of a base
    class (``metrics``, ``parameters``) be plain instance attributes."""
    for f in fields(cls):
        if isinstance(getattr(cls, f.name, None), property):
            setattr(cls, f.name, None)  # a non-descriptor: the instance attribute wins
    return cls
