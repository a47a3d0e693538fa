"""Text analyses of transformer models (issue 14): the five works' questions asked of text.

* :func:`text_separability` — per-layer probe accuracy and neighborhood hit of pooled token
  states (masked mean and CLS), pretrained vs re-initialised (Rauber et al. 2017).
* :func:`text_topk` — the top-k texts and tokens per unit, with a unit summary (Zeiler & Fergus's
  top-9 for text).
* :func:`text_occlusion` — mask or drop each token / n-gram and measure a unit, a probe's class
  score or the embedding similarity (Zeiler & Fergus's occlusion for text).
* :func:`text_transfer` — freeze the first n encoder layers of a pretrained or task-A-finetuned
  base and train the rest on task B (Yosinski et al.'s transfer grid on text).
* :func:`text_maximize` — optimise input embeddings for a unit under a norm constraint, decode them
  to the nearest tokens and report the gap (Erhan et al.'s activation maximization for text).

Models come from an ``hf:`` spec (:mod:`layerscope.models.hf`), data from ``wordnet`` or
``text:FILE`` (:mod:`layerscope.data.text`).
"""

from __future__ import annotations

from ._common import default_text_layers, reinitialized_copy, text_adapter
from .actmax import TextMaxResult, text_maximize
from .occlusion import TextOcclusionResult, text_occlusion
from .separability import TextSeparabilityResult, text_separability
from .topk import TextTopKResult, text_topk
from .transfer import TextTransferResult, text_transfer

__all__ = [
    "text_separability",
    "TextSeparabilityResult",
    "text_topk",
    "TextTopKResult",
    "text_occlusion",
    "TextOcclusionResult",
    "text_maximize",
    "TextMaxResult",
    "text_transfer",
    "TextTransferResult",
    "default_text_layers",
    "reinitialized_copy",
    "text_adapter",
]
