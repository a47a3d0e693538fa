"""Transferability of layers: the BnB / AnB ± fine-tuning grid of Yosinski et al. (NIPS 2014).

Yosinski, Clune, Bengio & Lipson, *How transferable are features in deep neural networks?*,
NIPS 2014. Split the classes into tasks A and B (:mod:`.split`), train baseA and baseB, then for
n = 1 … L−1 train networks on B whose first n layers are copied from a base, frozen or
fine-tuned, plus a random-frozen-filter baseline (:mod:`.grid`). Cells run on an executor
(:mod:`.executors`: in-process, process pool, Ray) into a resumable store (:mod:`.store`); the
table, the effects and the figure are rebuilt from the store (:mod:`.analysis`, :mod:`.plots`).

Example
-------
>>> from layerscope.transfer import GridConfig, run_grid               # doctest: +SKIP
>>> cfg = GridConfig(arch="convnet8:width=8,fc_width=64", data="mnist", split="mnist-0-4",
...                  seeds=(0, 1), epochs=3, limit=2000)                 # doctest: +SKIP
>>> result = run_grid(cfg, "grid-out")                                   # doctest: +SKIP
>>> result.effects[-1]["specificity"]["mean"]                            # doctest: +SKIP
"""

from .analysis import TransferResult, build_result, write_outputs
from .executors import LocalExecutor, PoolExecutor, RayExecutor, make_executor
from .grid import (
    BASES,
    CONDITIONS,
    Cell,
    CellTask,
    GridConfig,
    fit_network,
    k_best_mean,
    plan_cells,
    prepare_network,
    run_cell,
)
from .runner import pending_cells, resume_grid, run_grid
from .split import PRESETS, ClassSplit, random_split, resolve_split, task_subset
from .store import TransferStore

__all__ = [
    "BASES",
    "CONDITIONS",
    "Cell",
    "CellTask",
    "ClassSplit",
    "GridConfig",
    "LocalExecutor",
    "PRESETS",
    "PoolExecutor",
    "RayExecutor",
    "TransferResult",
    "TransferStore",
    "build_result",
    "fit_network",
    "k_best_mean",
    "make_executor",
    "pending_cells",
    "plan_cells",
    "prepare_network",
    "random_split",
    "resolve_split",
    "resume_grid",
    "run_cell",
    "run_grid",
    "task_subset",
    "write_outputs",
]
