"""Resumable on-disk store of a transfer grid: one atomic JSON file per finished cell.

Layout of a grid folder::

    DIR/grid.json                 the GridConfig, L (numbered layers), the cell plan
    DIR/cells/<cell id>.json      one record per finished cell (written atomically, by rename)
    DIR/bases/<cell id>.safetensors  weights of baseA / baseB per seed (written before the record)

A cell counts as finished exactly when its record exists; a killed run leaves at most temporary
files (``.*.tmp``, never read), so re-running the same grid skips every finished cell and only
the cells in flight are lost. The table, the effects and the figure are rebuilt from the store
alone (:func:`layerscope.transfer.analysis.build_result`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._io import read_json, write_json
from ..exceptions import DataError, ParameterError
from .grid import Cell, GridConfig

__all__ = ["TransferStore", "GRID_FILE"]

GRID_FILE = "grid.json"


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
        self.config = GridConfig.from_dict(doc["config"])
        self.n_layers = int(doc["n_layers"])
        self.meta: dict[str, Any] = dict(doc.get("meta", {}))

    @classmethod
    def create(
        cls, directory: str | os.PathLike[str], config: GridConfig, n_layers: int, meta: dict[str, Any] | None = None
    ) -> "TransferStore":
        """Open ``directory`` for ``config``, creating it if new.

        Raises ``ParameterError`` when the folder already holds a different grid (so finished
        cells of one grid are never mixed with another's).
        """
        d = Path(directory)
        if (d / GRID_FILE).is_file():
            store = cls(d)
            if store.config != config or store.n_layers != n_layers:
                old, new = store.config.to_dict(), config.to_dict()
                diff = {k: (old.get(k), new.get(k)) for k in new if old.get(k) != new.get(k)}
                raise ParameterError(
                    f"{d} already holds a different transfer grid (differs in {diff}); "
                    "resume it with `--resume`, or pick a new --out folder."
                )
            return store
        (d / "cells").mkdir(parents=True, exist_ok=True)
        (d / "bases").mkdir(parents=True, exist_ok=True)
        write_json(d / GRID_FILE, {"config": config.to_dict(), "n_layers": n_layers, "meta": meta or {}})
        return cls(d)

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
        return load_file(str(p))

    def records(self) -> list[dict[str, Any]]:
        """All finished cell records (read from disk), in file-name order."""
        folder = self.directory / "cells"
        if not folder.is_dir():
            return []
        return [read_json(p) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]

    def done_ids(self) -> set[str]:
        folder = self.directory / "cells"
        return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".")} if folder.is_dir() else set()
