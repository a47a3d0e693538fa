"""Deep belief networks: RBMs trained with contrastive divergence, stacked greedily (Hinton, Osindero &
Teh 2006), as Mohamed, Hinton & Penn (2012) used them to initialise acoustic models and Erhan et al.
(2009) visualised their units.

* :mod:`.rbm` — :class:`RBM` (Bernoulli-Bernoulli, unit-variance Gaussian-Bernoulli; CD-k, PCD),
  :class:`DBN` (greedy pre-training, mean-field up / down passes, :meth:`DBN.to_mlp`), :class:`DBNNet`;
* :mod:`.units` — :func:`pretrain_dbn` and :func:`dbn_units` (maximization, sampling with a unit
  clamped, linear combination);
* :mod:`.speech` — :func:`compare_pretraining`: pre-trained vs randomly initialised DNNs on FSDD;
* :mod:`.results` — the result objects; :mod:`.plots` — their figures.
"""

from __future__ import annotations

from typing import Any

from .rbm import DBN, RBM, DBNNet, as_matrix

__all__ = ["RBM", "DBN", "DBNNet", "as_matrix", "pretrain_dbn", "dbn_units", "sample_units", "linear_views",
           "compare_pretraining", "DBNPretraining", "DBNUnits", "DBNComparison"]

_LAZY = {"pretrain_dbn": ".units", "dbn_units": ".units", "sample_units": ".units", "linear_views": ".units",
         "compare_pretraining": ".speech", "DBNPretraining": ".results", "DBNUnits": ".results",
         "DBNComparison": ".results"}


def __getattr__(name: str) -> Any:
    """The analyses and results load on first use (they pull in matplotlib / the speech code)."""
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'layerscope.dbn' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
