"""Hidden-activity projections (Rauber, Fadel, Falcão & Telea, IEEE TVCG 23(1), 2017).

* :func:`project` — 2-D t-SNE / UMAP / PCA of one layer's activations → :class:`Projection`.
* :func:`neighborhood_hit`, :func:`accuracy` — the paper's NH (k = 6) and AC.
"""

from .metrics import accuracy, neighborhood_hit, neighborhood_hit_per_point
from .projectors import METHODS, Projection, project

__all__ = ["project", "Projection", "METHODS", "neighborhood_hit", "neighborhood_hit_per_point", "accuracy"]
