"""Every error layerscope raises on purpose.

All of them derive from :class:`LayerscopeError` and from the built-in type a caller would
expect (``KeyError`` for unknown names, ``ValueError`` for bad values, ...), so both
``except LayerscopeError`` and ``except ValueError`` work. Messages say what was expected,
what came, and how to fix it. The CLI prints them without a traceback.
"""

from __future__ import annotations

__all__ = [
    "LayerscopeError",
    "LayerNotFoundError",
    "InputShapeError",
    "DataError",
    "WeightsError",
    "UnsafeFileError",
    "UnsupportedFileError",
    "ModelSpecError",
    "ParameterError",
    "MissingDependencyError",
]


class LayerscopeError(Exception):
    """Base class of every error raised by layerscope on purpose."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class LayerNotFoundError(LayerscopeError, KeyError):
    """A layer name that is not a ``named_modules()`` path of the model."""


class InputShapeError(LayerscopeError, ValueError):
    """An input whose shape does not fit the model."""


class DataError(LayerscopeError, ValueError):
    """Missing, corrupt, empty or malformed data, or a bad data spec."""


class WeightsError(LayerscopeError, ValueError):
    """Missing, corrupt or mismatching weight file."""


class UnsafeFileError(WeightsError):
    """A file that can only be loaded by running pickled code, refused by default."""


class UnsupportedFileError(LayerscopeError, ValueError):
    """A file of a kind layerscope cannot read."""


class ModelSpecError(LayerscopeError, ValueError):
    """A ``--model`` spec that names nothing layerscope can load."""


class ParameterError(LayerscopeError, ValueError):
    """An argument outside its valid range (e.g. a unit index, a radius, a k)."""


class MissingDependencyError(LayerscopeError, ImportError):
    """An optional package that a feature needs is not installed; the message names the extra
    (``pip install 'layerscope[speech]'``). Raised by :func:`layerscope._optional.require`."""
