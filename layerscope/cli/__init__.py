"""The ``layerscope`` command line: thin wrappers that parse, call the API and write results.

Every module in this package defines commands on :data:`app` (imported from ``._app``); they are
all imported here, so adding a file ``layerscope/cli/<analysis>.py`` adds its commands.

Error contract of :func:`main` (the ``layerscope`` executable):

* an expected failure -- a :class:`~layerscope.exceptions.LayerscopeError` (bad data, options,
  files), an ``OSError`` of a file or the disk (permission denied, no space, read-only), or a
  usage error (unknown option, bad value) -- prints ONE line ``error: ...`` on stderr and exits
  with code 2, without a traceback;
* an unexpected internal error prints one line saying so and where the full traceback was saved
  (``<temp dir>/layerscope-traceback-<pid>.txt``) and exits with code 3; ``layerscope --debug
  ...`` (or ``LAYERSCOPE_DEBUG=1``) prints the traceback instead;
* Ctrl-C exits with 130.

Every command with an ``--out`` is run holding the write lock of that output
(:func:`layerscope._io.folder_lock`, after :func:`layerscope._io.check_writable`), so a
read-only, full or busy output fails before any work starts.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import click
import typer

from ._app import app, console, err_console
from ..exceptions import LayerscopeError

__all__ = ["app", "main", "EXIT_ERROR", "EXIT_INTERNAL"]

#: exit code of an expected failure (bad input, options, files, disk) and of usage errors
EXIT_ERROR = 2
#: exit code of an unexpected internal error (a bug)
EXIT_INTERNAL = 3

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}")

_debug = {"on": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an internal error (also LAYERSCOPE_DEBUG=1)."),
) -> None:
    """See what each layer of a trained PyTorch network has learned."""
    _debug["on"] = bool(debug)


def _guard_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command holding the write lock of its ``--out`` (checked writable first)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from .._io import folder_lock

        out = kwargs.get("out")
        if isinstance(out, Path) and not kwargs.get("list_steps"):  # `demo --list` writes nothing
            with folder_lock(out):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return run


def _guard_commands(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_layerscope_guarded", False):
            info.callback = _guard_out(info.callback)
            info.callback._layerscope_guarded = True  # type: ignore[attr-defined]
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _guard_commands(group.typer_instance)


_guard_commands(app)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(code)


def _os_message(err: OSError) -> str:
    where = err.filename if err.filename is not None else ""
    what = err.strerror or str(err)
    return f"{what}: {where}" if where else what


def _debugging() -> bool:
    return _debug["on"] or os.environ.get("LAYERSCOPE_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``layerscope`` command (see the module docstring for the error contract)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _debug["on"] = "--debug" in args[: next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))]
    try:
        rv = app(args=args, prog_name="layerscope", standalone_mode=False)
    except LayerscopeError as err:
        _fail(str(err), EXIT_ERROR)
    except (typer.TyperException, click.ClickException) as err:  # usage: unknown option, bad value, ...
        if type(err).__name__ == "NoArgsIsHelpError":  # `layerscope` alone: the help, as before
            err.show()  # type: ignore[union-attr]
            sys.exit(EXIT_ERROR)
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _fail(f"{err.format_message()}{hint}", EXIT_ERROR)
    except (KeyboardInterrupt, typer.Abort, click.exceptions.Abort):
        rv = 130
    except OSError as err:
        if _debugging():
            raise
        _fail(_os_message(err), EXIT_ERROR)
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        if _debugging():
            raise
        path = Path(tempfile.gettempdir()) / f"layerscope-traceback-{os.getpid()}.txt"
        try:
            path.write_text("".join(traceback.format_exception(err)))
            saved = f"the full traceback is in {path}"
        except OSError:
            saved = "the traceback could not be saved; run again with --debug to see it"
        _fail(
            f"internal error ({type(err).__name__}: {_one_line(str(err))[:300]}); this is a bug in layerscope, "
            f"{saved} (or run with --debug).",
            EXIT_INTERNAL,
        )
    if rv == 130:
        err_console.print("[yellow]interrupted[/]: finished results were written; partial ones were not.")
    sys.exit(rv if isinstance(rv, int) else 0)  # as typer's standalone mode: always exit
