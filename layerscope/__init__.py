"""layerscope: see what each layer of a trained PyTorch network has learned.

The analyses of five classic works on any PyTorch model — activation maximization (Erhan et al.
2009), visualizing convnets (Zeiler & Fergus 2014), hidden-activity projections (Rauber et al.
2017), acoustic-model analyses (Mohamed, Hinton & Penn 2012) and layer transferability (Yosinski
et al. 2014) — with figures, JSON metrics, an HTML report and a CLI.

Every name in ``__all__`` is importable from the top level (``from layerscope import project``),
but is loaded on first use (PEP 562 module ``__getattr__``): ``import layerscope`` stays fast and
imports neither torch nor matplotlib. :data:`EXPORTS` maps each public name to the module that
defines it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module (relative to this package) that defines it. One table, so adding an
#: analysis is one line; ``tests/test_import_graph.py`` checks that every entry resolves.
EXPORTS: dict[str, str] = {
    # foundation: layers, capture, data, models, results
    "LayerInfo": ".layers",
    "layer_names": ".layers",
    "list_layers": ".capture",
    "resolve_layer": ".layers",
    "Activations": ".capture",
    "capture": ".capture",
    "collect_activations": ".capture",
    "collect_activations_sharded": ".capture_shards",
    "LazyArray": ".store",
    "model_state_guard": ".capture",
    "capture_dataset": ".capture_result",
    "CaptureResult": ".capture_result",
    "iter_batches": ".seam",
    "Batch": ".seam",
    "load_dataset": ".data",
    "load_model": ".loading",
    "AnalysisResult": ".results",
    "read_result": ".results",
    "capture_dataset": ".capture_result",
    "CaptureResult": ".capture_result",
    # activation maximization (Erhan et al. 2009)
    "maximize": ".featurevis",
    "ActMaxResult": ".featurevis",
    "render": ".featurevis",
    "Rendering": ".featurevis",
    "unit_data_max": ".featurevis",
    # visualizing convnets (Zeiler & Fergus 2014)
    "top_activations": ".convnets",
    "TopK": ".convnets",
    "project_activations": ".convnets",
    "project_activation": ".convnets",
    "ActivationProjections": ".convnets",
    "deconv_projections": ".convnets",
    "DeconvProjections": ".convnets",
    "occlusion": ".convnets",
    "Occlusion": ".convnets",
    "occlusion_maps": ".convnets",
    "OcclusionMaps": ".convnets",
    "invariance_curves": ".convnets",
    "InvarianceCurves": ".convnets",
    "feature_evolution": ".convnets",
    "Evolution": ".convnets",
    "correspondence": ".convnets",
    "Correspondence": ".convnets",
    "receptive_field": ".convnets",
    "ReceptiveField": ".convnets",
    # hidden-activity projections (Rauber et al. 2017)
    "project": ".projection",
    "Projection": ".projection",
    "project_model": ".projection",
    "ProjectionStudy": ".projection",
    "project_sequence": ".projection",
    "ProjectionSequence": ".projection",
    "neuron_projection": ".projection",
    "project_neurons": ".projection",
    "NeuronProjection": ".projection",
    "neighborhood_hit": ".projection",
    # probes and similarity
    "linear_probe": ".similarity",
    "probe_layers": ".similarity",
    "ProbeResult": ".similarity",
    "linear_cka": ".similarity",
    "linear_cka_detail": ".similarity",
    "CKADetail": ".similarity",
    "cka_matrix": ".similarity",
    "probe_model": ".similarity",
    "ProbeStudy": ".similarity",
    "cka_model": ".similarity",
    "CKAResult": ".similarity",
    "probe_model": ".similarity",
    "ProbeStudy": ".similarity",
    "cka_model": ".similarity",
    "CKAResult": ".similarity",
    # acoustic models (Mohamed, Hinton & Penn 2012; Garcia-Romero et al. 2017)
    "analyze_layers": ".speech",
    "LayerAnalysis": ".speech",
    "embedding_study": ".speech",
    "EmbeddingStudy": ".speech",
    "analyze_speech_runs": ".speech",
    "SpeechAnalysis": ".speech",
    "embed_speech_run": ".speech",
    "SpeakerEmbeddings": ".speech",
    "speech_topk": ".speech",
    "SpeechTopK": ".speech",
    "speaker_embedding_study": ".speech",
    "XVectorStudy": ".speech",
    # deep belief networks (Hinton et al. 2006; Mohamed et al. 2012; Erhan et al. 2009)
    "RBM": ".dbn",
    "DBN": ".dbn",
    "DBNNet": ".dbn",
    "pretrain_dbn": ".dbn",
    "DBNPretraining": ".dbn",
    "dbn_units": ".dbn",
    "DBNUnits": ".dbn",
    "compare_pretraining": ".dbn",
    "DBNComparison": ".dbn",
    # layer transferability (Yosinski et al. 2014)
    "GridConfig": ".transfer",
    "run_grid": ".transfer",
    "resume_grid": ".transfer",
    "TransferResult": ".transfer",
    # transformers and text (Rauber, Zeiler & Fergus on a language model)
    "text_separability": ".text",
    "TextSeparabilityResult": ".text",
    "text_topk": ".text",
    "TextTopKResult": ".text",
    "text_occlusion": ".text",
    "TextOcclusionResult": ".text",
    "text_maximize": ".text",
    "TextMaxResult": ".text",
    "text_transfer": ".text",
    "TextTransferResult": ".text",
    "TextDataset": ".data",
    # export to other tools (TensorBoard's Embedding Projector)
    "export_tensorboard": ".export",
    "ProjectorExport": ".export",
    # the HTML report and the demo
    "build_report": ".report",
    "run_demo": ".demo",
    "DemoRun": ".demo",
}

__all__ = [*EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    """Load an exported name on first use (PEP 562)."""
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'layerscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


def _shadowing_export(name: str) -> property:
    """A property for an exported name that is also a submodule's name (``capture``).

    Importing the submodule ``layerscope.capture`` makes the import system set the package
    attribute ``capture`` to the module, which would hide the function from ``__getattr__``. The
    property (on the module's class, so it wins over that attribute) always returns the exported
    object and ignores the import system's assignment, as the eager ``from .capture import
    capture`` this package used to run did.
    """

    def get(self: types.ModuleType) -> Any:
        return getattr(importlib.import_module(EXPORTS[name], __name__), name)

    def set_(self: types.ModuleType, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError(f"layerscope.{name} is read-only")

    return property(get, set_)


class _Package(types.ModuleType):
    """This package's module type: properties for the exports that share a submodule's name."""


for _name, _module in EXPORTS.items():
    if _module == f".{_name}":
        setattr(_Package, _name, _shadowing_export(_name))
sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .capture_result import CaptureResult, capture_dataset
    from .convnets import (
        ActivationProjections,
        Correspondence,
        DeconvProjections,
        Evolution,
        InvarianceCurves,
        Occlusion,
        OcclusionMaps,
        ReceptiveField,
        TopK,
        correspondence,
        deconv_projections,
        feature_evolution,
        invariance_curves,
        occlusion,
        occlusion_maps,
        project_activation,
        project_activations,
        receptive_field,
        top_activations,
    )
    from .capture import Activations, capture, collect_activations, model_state_guard
    from .capture_shards import collect_activations_sharded
    from .store import LazyArray
    from .data import load_dataset
    from .featurevis import ActMaxResult, Rendering, maximize, render, unit_data_max
    from .capture import list_layers
    from .layers import LayerInfo, layer_names, resolve_layer
    from .seam import Batch, iter_batches
    from .loading import load_model
    from .projection import (
        NeuronProjection,
        Projection,
        ProjectionSequence,
        ProjectionStudy,
        neighborhood_hit,
        neuron_projection,
        project,
        project_model,
        project_sequence,
    )
    from .demo import DemoRun, run_demo
    from .report import build_report
    from .results import AnalysisResult, read_result
    from .similarity import (
        CKADetail,
        CKAResult,
        ProbeResult,
        ProbeStudy,
        cka_matrix,
        cka_model,
        linear_cka,
        linear_cka_detail,
        linear_probe,
        probe_layers,
        probe_model,
    )
    from .speech import (
        EmbeddingStudy,
        LayerAnalysis,
        SpeakerEmbeddings,
        SpeechAnalysis,
        SpeechTopK,
        XVectorStudy,
        analyze_layers,
        analyze_speech_runs,
        embed_speech_run,
        embedding_study,
        speaker_embedding_study,
        speech_topk,
    )
    from .data import TextDataset
    from .text import (
        TextMaxResult,
        TextOcclusionResult,
        TextSeparabilityResult,
        TextTopKResult,
        TextTransferResult,
        text_maximize,
        text_occlusion,
        text_separability,
        text_topk,
        text_transfer,
    )
    from .transfer import GridConfig, TransferResult, resume_grid, run_grid
