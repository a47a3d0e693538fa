"""The common shape of analysis results and of their folders on disk.

Every analysis command writes a folder ``OUT`` holding ``result.json`` plus figures (PNG) and,
where useful, arrays (``.npz``). ``result.json`` always has these keys::

    {
      "analysis": "<name>",         # e.g. "capture", "maximize", "occlusion", "projection", "transfer"
      "version": 1,
      "created": "<ISO time>",
      "model": {...},               # what was analysed (spec, source), if any
      "data": "<data spec>",        # if any
      "parameters": {...},          # every knob used
      "metrics": {...},             # the numbers (JSON-safe)
      "figures": [{"path": "grid.png", "title": "...", "caption": "..."}],  # paths relative to OUT
      ...                           # analysis-specific fields
    }

The HTML report (``layerscope report``) reads only these folders; it computes nothing itself.
:class:`Result` is a small immutable base that analysis result types can extend.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, TypeVar

from ._io import atomic_path, read_json, result_folder, to_jsonable, write_json
from .exceptions import DataError

__all__ = ["AnalysisResult", "Result", "write_result", "read_result", "RESULT_FILE", "model_description", "short_list",
           "write_figures"]

RESULT_FILE = "result.json"
R = TypeVar("R", bound="Result")


def model_description(model: Any) -> dict[str, Any]:
    """JSON-safe description of a model: class, parameter count, where it came from."""
    src = dict(getattr(model, "layerscope_source", None) or {})
    return {
        "class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "source": src,
        "input_shape": list(getattr(model, "input_shape", []) or []),
    }


def short_list(items: Any, limit: int = 4) -> str:
    """``[a, b, c, d, ... (12)]``: a list for a short ``repr``, the first ``limit`` items and the count."""
    xs = [str(x) for x in items]
    more = f", ... ({len(xs)})" if len(xs) > limit else ""
    return "[" + ", ".join(xs[:limit]) + more + "]"


def write_result(out_dir: str | os.PathLike[str], analysis: str, **fields_: Any) -> Path:
    """Write ``OUT/result.json`` atomically with the common keys filled in.

    This writes one file into ``out_dir`` as it is. To make the whole folder old-or-new (figures,
    arrays and result.json swapped in together), write them all inside
    :func:`layerscope._io.result_folder` and pass its staging folder here::

        with result_folder(out) as d:
            fig.savefig(d / "grid.png")
            write_result(d, "maximize", figures=[{"path": "grid.png", ...}])
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "analysis": analysis,
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "figures": [],
        "metrics": {},
        "parameters": {},
    }
    doc.update(fields_)
    write_json(d / RESULT_FILE, doc)
    return d / RESULT_FILE


def write_figures(
    out_dir: Path, specs: Iterable[tuple[str, Any, str, str]], *, dpi: int = 110, tight: bool = True
) -> list[dict[str, str]]:
    """Save each ``(stem, Figure, title, caption)`` as ``out_dir/<stem>.png`` (atomically, each file
    appears whole or not at all); return the ``figures`` entries of result.json, in order.

    ``tight``: crop to the drawn area (``bbox_inches="tight"``); ``False`` keeps the figure size.
    """
    entries = []
    for stem, fig, title, caption in specs:
        with atomic_path(out_dir / f"{stem}.png") as tmp:
            if tight:
                fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
            else:
                fig.savefig(tmp, format="png", dpi=dpi)
        entries.append({"path": f"{stem}.png", "title": title, "caption": caption})
    return entries


def _listed_files(doc: dict[str, Any]) -> list[str]:
    """Relative file names a result.json says are in its folder (``arrays`` and ``figures``)."""
    names: list[str] = []
    arrays = doc.get("arrays")
    if isinstance(arrays, str):
        names.append(arrays)
    elif isinstance(arrays, (list, tuple)):
        names += [a for a in arrays if isinstance(a, str)]
    elif isinstance(arrays, dict):
        names += [a for a in arrays.values() if isinstance(a, str)]
    for fig in doc.get("figures") or []:
        if isinstance(fig, dict) and isinstance(fig.get("path"), str):
            names.append(fig["path"])
    return names


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``result.json`` from a folder or a file path, checking it against its folder.

    Raises
    ------
    DataError
        No result.json; a truncated / corrupt one; one that is not a result (no ``"analysis"``);
        or one that lists arrays or figures (relative paths) that are not in the folder -- a
        folder that mixes two runs or lost files is refused, naming the missing files.
    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_FILE
    if not p.is_file():
        raise DataError(f"{p} does not exist; expected a folder written by a layerscope analysis command.")
    doc = read_json(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("analysis"), str):
        raise DataError(f"{p} is not a layerscope result.json (no \"analysis\" key); it may be from another tool.")
    folder = p.parent
    missing = [
        n for n in _listed_files(doc)
        if not os.path.isabs(n) and ".." not in Path(n).parts and not (folder / n).is_file()
    ]
    if missing:
        raise DataError(
            f"{p} lists files that are not in {folder}: {', '.join(missing)}; the folder is incomplete or mixes "
            "two runs. Re-run the command into a new --out."
        )
    return dict(doc)


@dataclass(frozen=True)
class Result:
    """Immutable base for analysis results: ``to_dict()`` (JSON-safe), ``save()``, ``load()``.

    Subclasses are frozen dataclasses; array fields are saved to ``arrays.npz`` next to
    ``result.json`` and restored by :meth:`load`.
    """

    analysis: str = field(default="result", init=False)

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        return {k: to_jsonable(v) for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` (and ``arrays.npz``) as a new folder swapped in whole.

        Goes through :func:`layerscope._io.result_folder`: one writer at a time, and ``out_dir``
        is the old folder or the new one, never a mix (also when called inside a command's own
        ``result_folder`` block, whose staging folder it then writes into).
        """
        import numpy as np

        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        doc = self.to_dict()
        doc.setdefault("version", 1)
        if arrays:
            doc["arrays"] = "arrays.npz"
            doc["array_shapes"] = {k: list(v.shape) for k, v in arrays.items()}
        with result_folder(out_dir) as d:
            if arrays:
                with open(d / "arrays.npz", "wb") as fh:
                    np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs match **arrays against allow_pickle: bool
            write_json(d / RESULT_FILE, doc)
        return Path(out_dir)

    @classmethod
    def load(cls: type[R], out_dir: str | os.PathLike[str]) -> R:
        """Read a folder written by :meth:`save`; arrays must match the shapes result.json lists."""
        import zipfile

        import numpy as np

        d = Path(out_dir)
        doc = read_result(d)
        kwargs = {f.name: doc.get(f.name) for f in fields(cls) if f.init and f.name in doc}
        shapes = doc.get("array_shapes") or {}
        if (d / "arrays.npz").exists():
            try:
                with np.load(d / "arrays.npz", allow_pickle=False) as z:
                    loaded = {k: z[k] for k in z.files}
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
                raise DataError(f"{d / 'arrays.npz'} is corrupt or truncated ({err}); re-run the analysis.") from None
            bad = {k: (shapes.get(k), list(v.shape)) for k, v in loaded.items() if k in shapes and shapes[k] != list(v.shape)}
            extra = sorted(set(loaded) - set(shapes)) if shapes else []
            lost = sorted(set(shapes) - set(loaded))
            if bad or extra or lost:
                raise DataError(
                    f"{d / 'arrays.npz'} does not match {d / RESULT_FILE}: "
                    + "; ".join(
                        [f"{k}: result.json says shape {a}, arrays.npz has {b}" for k, (a, b) in bad.items()]
                        + ([f"arrays not listed in result.json: {extra}"] if extra else [])
                        + ([f"arrays missing: {lost}"] if lost else [])
                    )
                    + ". The folder mixes two runs; re-run the analysis into a new --out."
                )
            kwargs.update(loaded)
        elif shapes:
            raise DataError(f"{d} has no arrays.npz, but {d / RESULT_FILE} lists arrays {sorted(shapes)}.")
        return cls(**kwargs)


class AnalysisResult:
    """The contract every analysis result follows (mixin; subclasses are usually dataclasses).

    An analysis is a library call that returns one of these. The object

    * holds its numbers: :attr:`metrics` (JSON-safe dict) and :attr:`parameters` (every knob used);
    * makes its figures: :meth:`figures` returns ``{file stem: matplotlib.figure.Figure}`` built
      with ``matplotlib.figure.Figure`` directly (no pyplot state, no backend switch), so they show
      in a notebook and are saved separately;
    * writes the folder the CLI writes with :meth:`save` (``result.json``, figures as PNG, arrays)
      and reads it back with the classmethod ``load(dir)``;
    * prints a short :func:`repr` and renders ``_repr_html_`` (a compact summary with the key
      figure) in notebooks.

    Subclasses set :attr:`analysis` and implement ``_write(staging_dir)`` (every file of the
    folder), ``load`` and either ``_figure_specs()`` (``[(stem, Figure, title, caption)]``, from
    which the default :meth:`figures` is built) or :meth:`figures` itself; :meth:`save` (staged
    through ``_write``), :meth:`save_figures` and :meth:`_repr_html_` are shared. A dataclass subclass is declared
    ``@dataclass(frozen=True, repr=False)`` (else the dataclass ``repr``, arrays and all, replaces
    the short one) and sets ``analysis = "..."`` without an annotation (a class attribute, not a field);
    it may declare ``metrics`` / ``parameters`` as fields.
    """

    analysis: str = "result"
    #: stem of the figure shown by ``_repr_html_`` (default: the first one)
    key_figure: str | None = None

    # ``metrics`` and ``parameters`` are properties with a setter that stores into the instance
    # ``__dict__``, so a (frozen) dataclass subclass may declare them as fields; a subclass that
    # computes them overrides the property instead.
    def _get_metrics(self) -> dict[str, Any]:
        return self.__dict__.get("metrics", {})  # type: ignore[no-any-return]

    def _set_metrics(self, value: dict[str, Any]) -> None:
        self.__dict__["metrics"] = value

    def _get_parameters(self) -> dict[str, Any]:
        return self.__dict__.get("parameters", {})  # type: ignore[no-any-return]

    def _set_parameters(self, value: dict[str, Any]) -> None:
        self.__dict__["parameters"] = value

    metrics = property(_get_metrics, _set_metrics)
    parameters = property(_get_parameters, _set_parameters)

    #: ``True``: :meth:`save` stages the folder and swaps it in whole
    #: (:func:`layerscope._io.result_folder`); ``False``: it writes into ``out_dir`` as it is.
    stage_folder: bool = True

    def _figure_specs(self) -> list[tuple[str, Any, str, str]]:
        """``[(stem, Figure, title, caption)]``: the figures and their entries in result.json (default none)."""
        return []

    def figures(self) -> dict[str, Any]:
        """``{stem: Figure}``: the figures of :meth:`_figure_specs` (the default has none)."""
        return {stem: fig for stem, fig, _, _ in self._figure_specs()}

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write the folder the analysis command writes (figures, arrays, ``result.json``); returns it.

        With :attr:`stage_folder` (the default) the folder is staged and swapped in at the end
        (:func:`layerscope._io.result_folder`): ``out_dir`` is the old result or the new one,
        never a mix. The files themselves are written by the subclass's ``_write(staging)``.
        """
        if not self.stage_folder:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            self._write(out)
            return out
        with result_folder(out_dir) as staging:
            self._write(staging)
        return Path(out_dir)

    def _write(self, d: Path) -> None:
        """Write every file of the result folder into ``d`` (a staging folder with :attr:`stage_folder`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _write(); it cannot be saved.")

    def save_figures(self, out_dir: str | os.PathLike[str], dpi: int = 110) -> list[dict[str, str]]:
        """Save :meth:`figures` as ``OUT/<stem>.png``; return the ``figures`` entries of result.json."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        entries = []
        for stem, fig in self.figures().items():
            path = d / f"{stem}.png"
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
            title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else stem
            entries.append({"path": path.name, "title": title, "caption": ""})
        return entries

    def _short_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for k, v in self.metrics.items():
            if isinstance(v, float):
                out.append((k, f"{v:.4g}"))
            elif isinstance(v, (int, str, bool)) or v is None:
                out.append((k, str(v)))
            if len(out) >= limit:
                break
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self._short_metrics(4))
        return f"{type(self).__name__}({self.analysis}{', ' if parts else ''}{parts})"

    def _repr_html_(self) -> str:
        import base64
        import html
        import io

        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self._short_metrics(12)
        )
        img = ""
        figs = self.figures()
        if figs:
            stem = self.key_figure if self.key_figure in figs else next(iter(figs))
            buf = io.BytesIO()
            figs[stem].savefig(buf, format="png", dpi=80, bbox_inches="tight")
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            img = f"<img style='max-width:640px' src='data:image/png;base64,{data}'/>"
        return (
            f"<div class='layerscope-result'><b>{html.escape(type(self).__name__)}</b> "
            f"<code>{html.escape(self.analysis)}</code><table>{rows}</table>{img}</div>"
        )
