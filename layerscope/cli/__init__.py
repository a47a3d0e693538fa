"""The ``layerscope`` command line: thin wrappers that parse, call the API and write results.

Every module in this package defines commands on :data:`app` (imported from ``._app``); they are
all imported here, so adding a file ``layerscope/cli/<analysis>.py`` adds its commands.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from ._app import app, console, err_console
from ..exceptions import LayerscopeError

__all__ = ["app", "main"]

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``layerscope`` command: errors are printed without a traceback."""
    try:
        app(args=argv, prog_name="layerscope", standalone_mode=True)
    except LayerscopeError as err:
        err_console.print(f"[bold red]error:[/] {type(err).__name__}: {err}", highlight=False, markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished results were written; partial ones were not.")
        sys.exit(130)
