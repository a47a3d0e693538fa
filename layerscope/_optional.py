"""Optional dependencies: one helper that imports them or says which extra to install.

Every import of a package that is not in layerscope's core dependencies goes through
:func:`require`, so a missing one is a one-line :class:`~layerscope.exceptions.MissingDependencyError`
naming the extra (``pip install 'layerscope[speech]'``) instead of a bare ``ImportError``.
:data:`EXTRAS` is the table (module -> pip package, extra); it mirrors
``[project.optional-dependencies]`` in pyproject.toml (a test checks both agree).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingDependencyError

__all__ = ["EXTRAS", "require", "install_hint"]

#: importable module -> (pip package, layerscope extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "librosa": ("librosa", "speech"),
    "umap": ("umap-learn", "umap"),
    "ray": ("ray", "ray"),
    "transformers": ("transformers", "text"),
    "zarr": ("zarr", "store"),
}


def install_hint(module: str) -> str:
    """``pip install 'layerscope[EXTRA]'`` (or the bare package) for an optional ``module``."""
    package, extra = EXTRAS.get(module.partition(".")[0], (module, ""))
    if not extra:
        return f"pip install {package}"
    return f"pip install 'layerscope[{extra}]' (or: pip install {package})"


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional ``module`` (e.g. ``"librosa"``) for ``purpose`` (e.g. ``"speech features"``).

    Raises
    ------
    MissingDependencyError
        The module (or a module it imports) is not installed; the message says which extra
        installs it. Errors raised while the module initialises other than a missing module
        propagate unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or module
        top = module.partition(".")[0]
        if missing.partition(".")[0] == top:
            raise MissingDependencyError(
                f"{purpose} needs the {EXTRAS.get(top, (top, ''))[0]!r} package, which is not installed; "
                f"install it with: {install_hint(top)}."
            ) from err
        raise MissingDependencyError(
            f"{purpose} needs {top!r}, which could not import its own dependency {missing!r}; "
            f"reinstall it with: {install_hint(top)}."
        ) from err
