"""Resumable on-disk store of a transfer grid: one atomic JSON file per finished cell.

Layout of a grid folder::

    DIR/grid.json                 the GridConfig, L (numbered layers), the cell plan
    DIR/cells/<cell id>.json      one record per finished cell (written atomically, by rename)
    DIR/bases/<cell id>.safetensors  weights of baseA / baseB per seed (written before the record)

A cell counts as finished exactly when its record exists; a killed run leaves at most temporary
files (``.*.tmp``, never read), so re-running the same grid skips every finished cell and only
the cells in flight are lost. The table, the effects and the figure are rebuilt from the store
alone (:func:`layerscope.transfer.analysis.build_result`).

Safety of the folder:

* ``grid.json`` is created exclusively (hard link of a finished temporary file, which fails if
  another grid got there first), so two grids with different settings can never share a folder;
  the second gets a :class:`~layerscope.exceptions.ParameterError` listing the differing settings.
* A run holds the folder's write lock (:func:`layerscope._io.folder_lock`): a second process
  running into the same folder gets a one-line error instead of computing the same cells.
* :meth:`TransferStore.check_matches` refuses settings that differ from the stored grid (what
  ``--resume`` with ``--arch``/``--epochs``... does).
* A cell record that is truncated or not a record (only possible from outside damage: records
  are written by rename) is **recomputed, with a warning**, when the grid is run or resumed
  (:meth:`TransferStore.repair`: the file is renamed to ``cells/.<id>.json.corrupt``, which no
  reader looks at); :meth:`records` (``--report``) refuses it with a ``DataError`` naming the file
  and saying that ``--resume`` recomputes it. A corrupt base weight file is handled alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .._io import atomic_path, read_json, to_jsonable, write_json
from ..exceptions import DataError, LayerscopeError, ParameterError
from .grid import Cell, GridConfig

__all__ = ["TransferStore", "GRID_FILE", "config_diff", "RECORD_KEYS"]

GRID_FILE = "grid.json"
#: keys every cell record has (a file without them is not a finished cell)
RECORD_KEYS = ("cell", "condition", "n", "seed", "metric", "val_accuracy")
log = logging.getLogger(__name__)


def config_diff(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (stored value, given value)}`` for every key of ``given`` whose value differs."""
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return {k: (stored.get(k), norm(v)) for k, v in given.items() if norm(stored.get(k)) != norm(v)}


def _diff_text(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in diff.items())


class TransferStore:
    """A grid folder: its config, its finished cells, its base weights."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not (self.directory / GRID_FILE).is_file():
            raise DataError(
                f"{self.directory} is not a transfer grid folder: it has no {GRID_FILE} "
                "(start a grid with `layerscope transfer --arch ... --out DIR`)."
            )
        doc = read_json(self.directory / GRID_FILE)
        try:
            self.config = GridConfig.from_dict(doc["config"])
            self.n_layers = int(doc["n_layers"])
            self.meta: dict[str, Any] = dict(doc.get("meta", {}))
        except LayerscopeError as err:  # settings that no longer work, e.g. a data file that is gone
            raise DataError(f"{self.directory / GRID_FILE}: its grid settings cannot be used: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{self.directory / GRID_FILE} is not a transfer grid file (missing or bad {err}); "
                "start a new grid in a new --out folder."
            ) from None

    @classmethod
    def create(
        cls, directory: str | os.PathLike[str], config: GridConfig, n_layers: int, meta: dict[str, Any] | None = None
    ) -> "TransferStore":
        """Open ``directory`` for ``config``, creating it if new.

        Raises ``ParameterError`` when the folder already holds a different grid (so finished
        cells of one grid are never mixed with another's).
        """
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise ParameterError(f"{d} exists and is not a folder; choose another --out.")
        if not (d / GRID_FILE).is_file():
            if d.is_dir() and any(not p.name.startswith(".") and p.name not in ("cells", "bases") for p in d.iterdir()):
                raise ParameterError(
                    f"{d} already holds files and no {GRID_FILE}; a transfer grid needs a new or empty --out folder."
                )
            (d / "cells").mkdir(parents=True, exist_ok=True)
            (d / "bases").mkdir(parents=True, exist_ok=True)
            doc = to_jsonable({"config": config.to_dict(), "n_layers": n_layers, "meta": meta or {}})
            fd, tmp = tempfile.mkstemp(prefix=f".{GRID_FILE}.", suffix=".tmp", dir=d)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(doc, fh, indent=2)
                    fh.write("\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                with contextlib.suppress(FileExistsError):  # another grid was created first: compare below
                    os.link(tmp, d / GRID_FILE)  # exclusive: fails if grid.json exists
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        store = cls(d)
        if store.config != config or store.n_layers != n_layers:
            diff = config_diff(store.config.to_dict(), config.to_dict())
            if store.n_layers != n_layers:
                diff["n_layers"] = (store.n_layers, n_layers)
            raise ParameterError(
                f"{d} already holds a different transfer grid ({_diff_text(diff)}); "
                "resume it with `--resume`, or pick a new --out folder."
            )
        return store

    def check_matches(self, settings: Mapping[str, Any]) -> None:
        """Refuse ``settings`` (GridConfig keys) that differ from the stored grid.

        Raises
        ------
        ParameterError
            Listing every differing key with its stored and given value.
        """
        names = set(self.config.to_dict())
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ParameterError(f"Unknown grid settings {unknown}; known: {sorted(names)}.")
        diff = config_diff(self.config.to_dict(), settings)
        if diff:
            raise ParameterError(
                f"--resume {self.directory}: the stored grid has other settings ({_diff_text(diff)}); "
                "leave these options out to finish the stored grid, or start a new grid in a new --out folder."
            )

    def _bad_record(self, path: Path) -> str | None:
        """Why the cell file ``path`` is not a finished record (None if it is one)."""
        try:
            rec = read_json(path)
        except DataError as err:
            return str(err)
        if not isinstance(rec, dict) or any(k not in rec for k in RECORD_KEYS) or rec.get("cell") != path.stem:
            return f"{path} is not a cell record of this grid (missing keys or another cell's id)"
        return None

    def repair(self) -> list[str]:
        """Set aside unreadable cell records and base weights so that they are recomputed.

        Each bad file is renamed to a hidden ``.<name>.corrupt`` (kept for inspection, never read)
        and a warning is logged. Returns the ids of the cells that will be recomputed.
        """
        from safetensors import safe_open

        bad: list[str] = []
        folder = self.directory / "cells"
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if p.name.startswith("."):
                continue
            why = self._bad_record(p)
            if why is not None:
                log.warning("transfer cell %s is unreadable and will be recomputed: %s", p.stem, why)
                os.replace(p, p.with_name(f".{p.name}.corrupt"))
                bad.append(p.stem)
        for p in sorted((self.directory / "bases").glob("*.safetensors")):
            try:
                with safe_open(str(p), framework="pt") as fh:
                    for k in fh.keys():
                        fh.get_tensor(k)
            except Exception as err:  # noqa: BLE001 - any failure to read means: recompute
                log.warning("transfer base %s is unreadable and will be recomputed: %s", p.stem, err)
                os.replace(p, p.with_name(f".{p.name}.corrupt"))
                rec = self.cell_path(p.stem)
                if rec.is_file():
                    os.replace(rec, rec.with_name(f".{rec.name}.corrupt"))
                bad.append(p.stem)
        return bad

    def cell_path(self, cell: Cell | str) -> Path:
        cid = cell.id if isinstance(cell, Cell) else cell
        return self.directory / "cells" / f"{cid}.json"

    def base_path(self, cell: Cell | str) -> Path:
        cid = cell.id if isinstance(cell, Cell) else cell
        return self.directory / "bases" / f"{cid}.safetensors"

    def has(self, cell: Cell) -> bool:
        return self.cell_path(cell).is_file()

    def put(self, record: dict[str, Any]) -> None:
        """Write a finished cell (base weights first, then the record that marks it done)."""
        from ..training import save_safetensors

        record = dict(record)
        state = record.pop("state", None)
        cid = record["cell"]
        if state is not None:
            save_safetensors(state, self.base_path(cid))  # 0644 like every other file (not save_file's 0600)
        write_json(self.cell_path(cid), record)

    def base_state(self, cell_id: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        p = self.base_path(cell_id)
        if not p.is_file():
            raise DataError(f"Base weights {p} are missing; the base cell {cell_id} must finish first.")
        try:
            return load_file(str(p))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise DataError(
                f"Base weights {p} are unreadable ({err}); `layerscope transfer --resume {self.directory}` "
                "recomputes them."
            ) from None

    def records(self) -> list[dict[str, Any]]:
        """All finished cell records (read from disk), in file-name order.

        Raises
        ------
        DataError
            A record is truncated or not a record (naming the file; ``--resume`` recomputes it).
        """
        folder = self.directory / "cells"
        if not folder.is_dir():
            return []
        out = []
        for p in sorted(folder.glob("*.json")):
            if p.name.startswith("."):
                continue
            why = self._bad_record(p)
            if why is not None:
                raise DataError(
                    f"{why}; `layerscope transfer --resume {self.directory}` recomputes the cell."
                )
            out.append(read_json(p))
        return out

    def done_ids(self) -> set[str]:
        folder = self.directory / "cells"
        return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".")} if folder.is_dir() else set()
