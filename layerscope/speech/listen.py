"""Which frames does a unit prefer? Top-k frames of hidden units, with the recordings to listen to.

For each unit of a layer of a speech run, the ``k`` frames of the run's test recordings with the
strongest activation (at most one frame per recording, so that the ``k`` examples differ), shown
as the recording's log-mel spectrogram with the frame's context window marked, and written as
``.wav`` files that the HTML report turns into audio players.

``result.json`` of ``layerscope speech topk`` (``analysis = "speech_topk"``)::

    parameters: {run, layer, units, k, part, memory_budget, store, storage_rule}
    metrics: {"units": [{"unit": j, "dead": bool (never fires), "top": [{"utterance", "filename", "frame", "time_s", "activation",
                                             "digit", "speaker"}, ...]}, ...],
              "digit_purity": mean over live units of the share of the top-k frames with the unit's most
                              common digit, "speaker_purity": the same for speakers}
    figures: "topk_spectrograms.png", then one "audio/u{j}_{r}_{file}.wav" per unit and rank
"""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence

import numpy as np

from .._progress import ProgressArg, resolve_progress
from .._stream import captured, check_storage, column_max, columns, storage_params
from ..data.audio import AudioDataset
from ..exceptions import ParameterError
from ..layers import resolve_layer
from ..results import model_description
from .recipe import load_acoustic_run
from .results import SpeechTopK

__all__ = ["top_frames", "speech_topk"]


def top_frames(activations: np.ndarray, utterances: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` strongest activations of one unit, at most one per recording.

    Parameters
    ----------
    activations : (N,) array
    utterances : (N,) array — the recording of each row
    k : int

    Returns
    -------
    (min(k, number of recordings),) int array, strongest first.
    """
    a = np.asarray(activations, dtype=np.float64)
    order = np.argsort(-a, kind="stable")
    _, first = np.unique(np.asarray(utterances)[order], return_index=True)  # best row of each recording
    best = order[np.sort(first)]
    return best[: int(k)]


def speech_topk(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    layer: str,
    units: Sequence[int] | None = None,
    k: int = 5,
    part: Literal["train", "test", "all"] = "test",
    audio: AudioDataset | None = None,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> SpeechTopK:
    """Top-k frames of units of ``layer`` over a run's recordings (what ``layerscope speech topk`` writes).

    Returns a :class:`~.results.SpeechTopK` (spectrogram figure, the recordings as wav files);
    with ``out_dir`` it is also saved there.

    ``memory_budget`` (bytes) / ``store`` (``"npy"``, ``"zarr"``) are passed to
    :func:`~layerscope.capture.collect_activations` (a temporary folder, removed at the end). The
    layer is then read block by block in every case: once for each unit's maximum (which units
    ever fire), once for the chosen units' columns; memory holds one block and ``(N, units)``
    values, never the ``(N, D)`` layer. The result is the same with and without a budget.
    """
    import io

    from matplotlib.figure import Figure
    from scipy.io import wavfile

    from .runs import _load_audio, run_name

    if k < 1:
        raise ParameterError(f"k must be >= 1; got {k}.")
    check_storage(memory_budget, store)
    run = load_acoustic_run(run_dir)
    resolve_layer(run.model, layer)
    aud = _load_audio(run, audio)
    frames = run.frames(aud, part)
    with captured(run.model, frames, [layer], batch_size=2048, progress=resolve_progress(progress),
                  memory_budget=memory_budget, store=store) as acts:
        x = acts.arrays[layer]
        width = int(np.prod(x.shape[1:], dtype=np.int64))
        alive = column_max(x) > 0
        if units is None:  # the first 8 units that fire at all (ReLU units can be dead: 0 everywhere)
            chosen = [int(u) for u in np.flatnonzero(alive)[:8]] or list(range(min(8, width)))
        else:
            chosen = [int(u) for u in units]
        bad = [u for u in chosen if not 0 <= u < width]
        if bad:
            raise ParameterError(f"Units {bad} are outside 0..{width - 1} of layer {layer!r}.")
        cols = columns(x, chosen)  # (N, len(chosen)): the chosen units only
    utt = np.asarray(frames.extra_labels["utterance"])
    frm = np.asarray(frames.extra_labels["frame"])
    cfg = run.extractor.config
    _, hop, n_fft = cfg.frame_params(aud.sample_rate)
    files: dict[str, bytes] = {}
    fig = Figure(figsize=(2.2 * k, 1.9 * len(chosen)))
    axes = fig.subplots(len(chosen), k, squeeze=False)
    units_doc: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    from .features import FeatureConfig, frame_features

    show_cfg = FeatureConfig(kind="fbank", n_mels=cfg.n_mels, win_ms=cfg.win_ms, hop_ms=cfg.hop_ms, fmin=cfg.fmin,
                             fmax=cfg.fmax)
    for i, unit in enumerate(chosen):
        rows = top_frames(cols[:, i], utt, k)
        top: list[dict[str, Any]] = []
        for r_i, row in enumerate(rows):
            u, t = int(utt[row]), int(frm[row])
            name = aud.filenames[u]
            rel = f"audio/u{unit}_{r_i + 1}_{name}"
            wav = np.clip(aud.waveforms[u] * 32768.0, -32768, 32767).astype(np.int16)
            buf = io.BytesIO()
            wavfile.write(buf, aud.sample_rate, wav)
            files[rel] = buf.getvalue()
            time_s = (t * hop + n_fft / 2) / aud.sample_rate
            entry = {"utterance": u, "filename": name, "frame": t, "time_s": round(time_s, 3),
                     "activation": float(cols[row, i]), "digit": int(aud.labels[u]),
                     "speaker": aud.speaker_names[int(aud.speakers[u])]}
            top.append(entry)
            figures.append({"path": rel, "title": f"unit {unit}, #{r_i + 1}: {name}",
                            "caption": f"activation {entry['activation']:.2f} at frame {t} ({time_s:.2f} s); "
                                       f"digit {entry['digit']}, speaker {entry['speaker']}"})
            ax = axes[i, r_i]
            spec = frame_features(aud.waveforms[u], aud.sample_rate, show_cfg)
            ax.imshow(spec.T, origin="lower", aspect="auto", cmap="magma")
            ax.axvspan(t - cfg.context - 0.5, t + cfg.context + 0.5, color="cyan", alpha=0.25, lw=0)
            ax.axvline(t, color="cyan", lw=0.8)
            ax.set_xlim(-0.5, spec.shape[0] - 0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"u{unit} #{r_i + 1}: '{entry['digit']}' {entry['speaker']} ({entry['activation']:.1f})", fontsize=7)
        for r_i in range(len(rows), k):
            axes[i, r_i].axis("off")
        units_doc.append({"unit": unit, "dead": not bool(alive[unit]), "top": top})
    fig.suptitle(f"{run_name(run)} {layer}: top-{k} frames per unit (cyan: the input's context window)", fontsize=9)
    fig.tight_layout()

    def purity(key: str) -> float:
        vals = []
        for u in units_doc:
            if u["dead"]:  # ties at 0: the "top" frames are arbitrary
                continue
            labels = [t[key] for t in u["top"]]
            vals.append(max(labels.count(v) for v in set(labels)) / len(labels))
        return float(np.mean(vals)) if vals else float("nan")

    doc = {
        "model": {**model_description(run.model), "name": run_name(run)},
        "data": f"fsdd frames ({part} recordings)",
        "parameters": {"run": str(run_dir), "layer": layer, "units": chosen, "k": k, "part": part,
                       **storage_params(memory_budget, store)},
        "metrics": {"units": units_doc, "digit_purity": purity("digit"), "speaker_purity": purity("speaker")},
        "figures": [{"path": "topk_spectrograms.png", "title": f"{layer}: top-{k} frames per unit",
                     "caption": "Log-mel spectrogram of each recording; the cyan band is the context window "
                                "the unit saw, the line its centre frame."}] + figures,
    }
    result = SpeechTopK(doc, {"topk_spectrograms": lambda: fig}, files=files)
    if out_dir is not None:
        result.save(out_dir)
    return result
