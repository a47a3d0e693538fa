"""One name and one definition per metric the report shows.

Every number the report puts in a curated table, chart legend or plot header is looked up here by
the key its analysis wrote into ``result.json``: :func:`lookup` gives a :class:`Term` (a short
label and a one-line definition), from :data:`TERMS` (exact keys) or :data:`PATTERNS` (key
families such as ``delta_<layer>_<part>`` or ``nh_digit_xutt_last``). A key with no entry is not
shown under a made-up name: the report leaves it in the section's raw data (behind a toggle).

Two different quantities never share a label: the speech analysis's NH over every neighbour
(``nh_digit``) and over neighbours from other recordings only (``nh_digit_xutt``) are labelled
"NH digit (all frames)" and "NH digit (other recordings)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

__all__ = ["Term", "TERMS", "PATTERNS", "lookup", "label_of"]


@dataclass(frozen=True)
class Term:
    """A metric's display name and its one-line definition."""

    label: str
    definition: str


_NH = "neighborhood hit: share of each point's k nearest neighbours (k = 6 by default) of its own class, averaged over points"

#: Exact keys. Aliases written by different analyses for the same quantity share one entry.
TERMS: dict[str, Term] = {
    # dimensions of the tables
    "layer": Term("layer", "the module's dotted name in the model (named_modules), or 'input' for the raw input features"),
    "epoch": Term("epoch", "training epoch of the checkpoint (0 = before any training)"),
    "checkpoint": Term("epoch", "training epoch of the checkpoint (0 = before any training)"),
    "unit": Term("unit", "index of the neuron / channel in the layer"),
    "class": Term("class", "the class (digit, object or speaker) the row is about"),
    "image": Term("image", "the input found for the unit (also in the grid above)"),
    "sample_id": Term("sample", "index of the observation in the dataset"),
    "step": Term("step", "the demo step's name"),
    "status": Term("status", "ok, failed, skipped (a needed step did not finish) or not selected"),
    "what": Term("what it does", "the step's description"),
    "note": Term("note", "why the step was skipped or how it failed"),
    "name": Term("name", "the module's dotted name in the model (named_modules)"),
    "type": Term("type", "the module's class"),
    "output_shape": Term("output shape", "shape of the module's output for one observation"),
    "total_params": Term("parameters", "number of parameters of the module, its children included"),
    "condition": Term("condition", "Yosinski et al. 2014: baseA/baseB = trained on task A/B alone; BnB/AnB = first n layers copied "
                                   "from baseB/baseA and frozen; a '+' suffix = copied layers fine-tuned"),
    "n": Term("n", "number of layers copied (transfer) or number of observations (elsewhere)"),
    "seeds": Term("seeds", "number of random seeds the mean is taken over"),
    "seconds": Term("seconds", "wall-clock time of the computation on the machine that ran it"),
    "model": Term("model", "the trained network analysed"),
    "run": Term("run", "folder of the training run"),
    "architecture": Term("architecture", "model specification the run was trained from"),
    "data": Term("data", "dataset specification"),
    "training samples": Term("training samples", "number of observations the run was trained on"),
    "checkpoints (epochs)": Term("checkpoints (epochs)", "epochs at which the weights were saved"),
    "complete": Term("complete", "whether the run finished every epoch it was asked for"),
    # training
    "val_accuracy": Term("validation accuracy", "fraction of held-out observations whose arg-max output is the true class"),
    "final val accuracy": Term("validation accuracy", "fraction of held-out observations whose arg-max output is the true class"),
    "train_accuracy": Term("training accuracy", "fraction of training observations classified correctly during the epoch"),
    "train_loss": Term("training loss", "mean cross-entropy over the epoch's training batches"),
    "val_loss": Term("validation loss", "mean cross-entropy on the held-out observations"),
    "accuracy": Term("accuracy", "fraction of observations whose arg-max output (or probe prediction) is the true class"),
    # demo
    "ok": Term("steps ok", "demo steps that finished"),
    "failed": Term("steps failed", "demo steps that raised an error"),
    "skipped": Term("steps skipped", "demo steps not run because a step they need did not finish"),
    "seconds before the report": Term("seconds before the report", "wall-clock time of all demo steps"),
    # activation maximisation (Erhan et al. 2009; Olah et al. 2017)
    "n_units": Term("units", "number of units (neurons / channels) analysed"),
    "mean_activation": Term("mean activation reached", "the objective's value at the last step, averaged over the units (best restart each)"),
    "activation": Term("activation reached", "the objective's value at the last step for this unit (best restart)"),
    "mean_consistency": Term("mean restart consistency", "mean pairwise cosine similarity of the images found from different random restarts, averaged over units"),
    "consistency": Term("restart consistency", "mean pairwise cosine similarity of the images found from different random restarts"),
    "class_probability": Term("class probability", "the model's softmax probability of the unit's class for the image found"),
    "predicted_class": Term("predicted class", "the model's arg-max class for the image found"),
    "min_class_probability": Term("lowest class probability", "smallest softmax probability of the target class over the images found"),
    "fraction_classified_as_target": Term("classified as target", "fraction of images found that the model assigns to the class they maximise"),
    "fraction_exceeding_data_max": Term("above data maximum", "fraction of units whose image activates them more than any observation of the data"),
    "data_max": Term("data maximum", "the unit's largest activation over the observations of the data"),
    "exceeds_data_max": Term("exceeds data maximum", "whether the image found activates the unit more than any observation"),
    # Zeiler & Fergus
    "mean_top1": Term("mean top-1 activation", "the strongest activation of each unit over the data, averaged over units"),
    "top1": Term("top-1 activation", "the unit's strongest activation over the data"),
    "top9": Term("9th activation", "the unit's 9th strongest activation over the data"),
    "top_classes": Term("classes of the top 9", "true classes of the 9 observations that activate the unit most"),
    "mean_base_probability": Term("mean probability (unoccluded)", "the model's probability of the target class on the unoccluded images, averaged"),
    "mean_min_probability": Term("mean lowest probability (occluded)", "the lowest probability of the target class over all occluder positions, averaged over images"),
    "label_changed_fraction": Term("label changed", "fraction of occluder positions at which the predicted class changes, averaged over images"),
    "base_probability": Term("probability (unoccluded)", "the model's probability of the target class on the unoccluded image"),
    "min_probability": Term("lowest probability (occluded)", "the lowest probability of the target class over all occluder positions"),
    "base_activation": Term("feature-map activation", "total activation of the chosen feature map on the unoccluded image"),
    "true_label": Term("true class", "the observation's class in the data"),
    "target": Term("target class", "the class whose probability is mapped"),
    "base_label": Term("predicted class (unoccluded)", "the model's arg-max class on the unoccluded image"),
    "mean_top_value_last_epoch": Term("mean top activation (last epoch)", "strongest activation of each unit over the data at the last checkpoint, averaged over units"),
    "fraction_same_sample_as_last": Term("same top observation as last epoch", "fraction of (unit, checkpoint) pairs whose strongest observation is the one at the last checkpoint"),
    "top_value": Term("top activation", "the unit's strongest activation over the data at that checkpoint"),
    "random_std": Term("Δ random: std", "standard deviation of Δ over the random masks"),
    "random": Term("Δ random", "Δ when random patches of the same size are masked (the baseline)"),
    # projections (Rauber et al. 2017)
    "nh": Term("NH (2-D)", _NH + ", computed in the 2-D projection"),
    "neighborhood_hit": Term("NH (2-D)", _NH + ", computed in the 2-D projection"),
    "nh_embedding": Term("NH (2-D)", _NH + ", computed in the 2-D projection"),
    "nh_2d": Term("NH (2-D)", _NH + ", computed in the 2-D projection"),
    "nh_original": Term("NH (activation space)", _NH + ", computed in the layer's original activation space"),
    "nh_activation": Term("NH (activation space)", _NH + ", computed in the layer's original activation space"),
    "ac": Term("AC", "classification accuracy of the model at that checkpoint on the projected observations"),
    "n_neurons": Term("neurons", "number of neurons laid out"),
    "n_dead": Term("dead neurons", "neurons that never activate on the data (left out of the layout)"),
    "kl_divergence": Term("t-SNE KL divergence", "Kullback-Leibler divergence between the neighbour distributions of the layout and of the distances (lower = more faithful)"),
    "top_neurons": Term("most important neurons", "neurons with the highest feature importance for the class (random-forest impurity decrease)"),
    # probes and CKA
    "chance": Term("chance", "accuracy of always predicting the most frequent class of the test part"),
    "n_train": Term("training observations", "observations the probe was fitted on"),
    "n_test": Term("test observations", "held-out observations the probe accuracy is measured on"),
    "n_features": Term("features", "dimension of the layer's activations given to the probe"),
    "n_classes": Term("classes", "number of classes"),
    "C": Term("C", "inverse L2 regularisation strength of the logistic regression"),
    "cka": Term("linear CKA", "linear centred kernel alignment between two layers' activations on the same observations (Kornblith et al. 2019); 1 = same up to rotation and isotropic scaling"),
    # speech (Mohamed et al. 2012)
    "frame_accuracy": Term("frame accuracy", "fraction of test frames whose arg-max output is the spoken digit"),
    "utterance_accuracy": Term("utterance accuracy", "fraction of test recordings classified correctly by summing the frames' log-probabilities"),
    "probe_digit": Term("probe accuracy digit", "held-out accuracy (other recordings) of a logistic regression predicting the digit from the layer"),
    "probe_speaker": Term("probe accuracy speaker", "held-out accuracy (other recordings) of a logistic regression predicting the speaker from the layer"),
    "nh_digit": Term("NH digit (all frames)", _NH + ", with digit as class and any frame as neighbour (frames of the same recording included)"),
    "nh_speaker": Term("NH speaker (all frames)", _NH + ", with speaker as class and any frame as neighbour (frames of the same recording included)"),
    "nh_digit_xutt": Term("NH digit (other recordings)", _NH + ", with digit as class and only frames of other recordings as neighbours"),
    "nh_speaker_xutt": Term("NH speaker (other recordings)", _NH + ", with speaker as class and only frames of other recordings as neighbours"),
    "nh_digit_original": Term("NH digit, activation space (all frames)", _NH + ", digit as class, in the layer's activation space, any frame as neighbour"),
    "nh_speaker_original": Term("NH speaker, activation space (all frames)", _NH + ", speaker as class, in the layer's activation space, any frame as neighbour"),
    "nh_digit_original_xutt": Term("NH digit, activation space (other recordings)", _NH + ", digit as class, in the layer's activation space, only frames of other recordings"),
    "nh_speaker_original_xutt": Term("NH speaker, activation space (other recordings)", _NH + ", speaker as class, in the layer's activation space, only frames of other recordings"),
    "chance_digit": Term("chance digit", "accuracy of always predicting the most frequent digit"),
    "chance_speaker": Term("chance speaker", "accuracy of always predicting the most frequent speaker"),
    "purity": Term("cluster purity", "each cluster counts its most frequent true speaker; summed over clusters and divided by the number of recordings"),
    "ari": Term("ARI speaker", "adjusted Rand index between the clusters and the true speakers (0 = chance, 1 = identical)"),
    "nmi": Term("NMI speaker", "normalised mutual information between the clusters and the true speakers"),
    "ari_digit": Term("ARI digit", "adjusted Rand index between the clusters and the spoken digits (high = clusters follow the digit, not the speaker)"),
    "n_clusters": Term("clusters", "number of agglomerative clusters (= number of speakers)"),
    "dim": Term("dimension", "dimension of the layer's activations"),
    "best_layer": Term("best layer", "layer with the highest cluster purity"),
    "n_recordings": Term("recordings", "number of recordings embedded (mean of their frames' activations)"),
    "n_speakers": Term("speakers", "number of distinct speakers"),
    "chance_purity": Term("chance purity", "purity of putting every recording in one cluster (share of the most frequent speaker)"),
    "unseen_speakers": Term("unseen speakers", "whether the embedded speakers were absent from training"),
    # transfer (Yosinski et al. 2014)
    "cells_done": Term("cells done", "trainings of the grid that finished"),
    "cells_total": Term("cells total", "trainings the grid asks for"),
    "baseA": Term("baseA accuracy", "validation accuracy of the network trained on task A alone"),
    "baseB": Term("baseB accuracy", "validation accuracy of the network trained on task B alone"),
    "max_specificity": Term("largest specificity", "largest BnB − AnB over n: the drop from copying layers of a network trained on the other task"),
    "max_specificity_n": Term("n of largest specificity", "number of copied layers at which specificity is largest"),
    "max_co_adaptation": Term("largest co-adaptation", "largest baseB − BnB over n: the drop from freezing co-adapted layers"),
    "max_co_adaptation_n": Term("n of largest co-adaptation", "number of copied layers at which co-adaptation is largest"),
    "mean_fine_tuning_boost": Term("mean fine-tuning boost", "AnB+ − baseB averaged over n: the gain from starting with transferred, fine-tuned layers"),
    "co_adaptation": Term("co-adaptation", "baseB − BnB: accuracy lost by freezing the first n layers of baseB and retraining the rest"),
    "specificity": Term("specificity", "BnB − AnB: accuracy lost by copying the first n layers from the other task rather than the same"),
    "fine_tuning_boost": Term("fine-tuning boost", "AnB+ − baseB: accuracy gained by copying the first n layers from task A and fine-tuning them"),
    "mean": Term("accuracy on task B", "accuracy on task B at the selected epochs (the section states the selection rule: held-out "
                                       "part of the training data, or the reported data for grids made before that rule), averaged over seeds"),
    "final_accuracy": Term("final accuracy", "validation accuracy after the last epoch"),
    # text analyses (transformers)
    "variant": Term("model variant", "pretrained = the model as loaded; reinitialised = the same architecture with freshly "
                                     "initialised weights (Rauber's 'before training')"),
    "pooling": Term("pooling", "how a text's token states become one vector: mean over its real tokens (padding masked) or the [CLS] token"),
    "probe_accuracy": Term("probe accuracy", "held-out accuracy of a logistic regression predicting the class from the layer"),
    "probe_chance": Term("probe chance", "accuracy of always predicting the most frequent class of the held-out part"),
    "embedding_activation": Term("activation, optimised embeddings", "the unit's activation for the input embeddings found by gradient ascent (norm-constrained, not real tokens)"),
    "token_activation": Term("activation, nearest real tokens", "the unit's activation when the optimised embeddings are replaced by the nearest vocabulary tokens and fed back"),
    "activation_gap": Term("gap (embeddings − tokens)", "activation of the optimised embeddings minus that of the nearest real tokens: what is lost by projecting onto the vocabulary"),
    "data_top1": Term("activation, data top-1", "the unit's highest activation over the texts of the data"),
    "tokens": Term("nearest tokens", "the vocabulary token nearest to each optimised position"),
    "data_top1_text": Term("data top-1 text", "the text of the data on which the unit is highest"),
    "pnb_test": Term("PnB test accuracy", "test accuracy on task B, first n layers copied from the pretrained model and frozen (mean over seeds)"),
    "anb_test": Term("AnB test accuracy", "test accuracy on task B, first n layers copied from the model fine-tuned on task A and frozen (mean over seeds)"),
    "pnb_range": Term("PnB seed range", "lowest–highest PnB test accuracy over seeds"),
    "anb_range": Term("AnB seed range", "lowest–highest AnB test accuracy over seeds"),
    "pnb_val": Term("PnB held-out accuracy", "accuracy on the held-out part of task B's training texts at the chosen epoch (mean over seeds)"),
    "anb_val": Term("AnB held-out accuracy", "accuracy on the held-out part of task B's training texts at the chosen epoch (mean over seeds)"),
    "anb_minus_pnb": Term("AnB − PnB", "effect of fine-tuning the copied layers on task A first, paired by seed (mean)"),
    "seed": Term("seed", "random seed of the run"),
    "best_epoch": Term("chosen epoch", "epoch with the best accuracy on the held-out part of the training data"),
    "test_accuracy": Term("test accuracy", "fraction of the test split classified correctly"),
    "task_a_test_accuracy": Term("task A test accuracy", "the A-finetuned base's accuracy on task A's test texts"),
    "task_a_val_accuracy": Term("task A held-out accuracy", "the A-finetuned base's accuracy on the held-out part of task A's training texts"),
}

_SPEECH_POS = {"input": "at the input", "first": "at the first hidden layer", "last": "at the last layer",
               "trend": "trend over depth"}


def _speech_summary(m: re.Match[str]) -> Term | None:
    base = lookup(m.group(1))
    if base is None:
        return None
    where = m.group(2)
    if where == "trend":
        return Term(f"{base.label}: trend over depth", f"Spearman correlation of {base.label} with depth (+1: rises at every layer, −1: falls); {base.label} = {base.definition}")
    return Term(f"{base.label} {_SPEECH_POS[where]}", f"{base.label} {_SPEECH_POS[where]}; {base.label} = {base.definition}")


def _delta(m: re.Match[str]) -> Term:
    layer, part = m.group(1), m.group(2)
    what = "random patches of the same size" if part == "random" else f"the {part} part"
    return Term(f"Δ {layer} {part}", f"mean normalised Hamming distance at {layer} between the sign patterns of feature changes when {what} is masked in each image (Zeiler & Fergus 2014, Sec. 5.1; lower = more consistent)")


#: Key families: (regular expression on the whole key, maker of the term). The first match wins.
PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Term | None]]] = [
    (re.compile(r"(nh_(?:digit|speaker)(?:_original)?(?:_xutt)?|probe_(?:digit|speaker))_(input|first|last|trend)"), _speech_summary),
    (re.compile(r"delta_(.+)_(top|bottom|left|right|random)"), _delta),
    (re.compile(r"mean activation (.+)"), lambda m: Term(f"mean activation of {m.group(1)}", f"activation of {m.group(1)} averaged over units and observations")),
    (re.compile(r"cosine_([a-z]+)_([a-z]+)"), lambda m: Term(f"cosine {m.group(1)} vs {m.group(2)}", f"mean cosine similarity between the {m.group(1)} and {m.group(2)} projections of the same activations")),
    (re.compile(r"(translate|scale|rotate)_min_mean_probability"),
     lambda m: Term(f"lowest probability under {m.group(1)}", f"the true class's probability averaged over the images, at the worst {m.group(1)} amount tried")),
    (re.compile(r"delta (top|bottom|left|right)"), lambda m: Term(f"Δ {m.group(1)}", f"mean normalised Hamming distance between the sign patterns of feature changes when the {m.group(1)} part is masked (Zeiler & Fergus 2014)")),
]


def lookup(key: str) -> Term | None:
    """The :class:`Term` of a metric key, or None when the glossary does not define it."""
    if not isinstance(key, str):
        return None
    if key in TERMS:
        return TERMS[key]
    for pattern, make in PATTERNS:
        m = pattern.fullmatch(key)
        if m is not None:
            term = make(m)
            if term is not None:
                return term
    return None


def label_of(key: str) -> str:
    """The display label of a key (the key itself when undefined)."""
    term = lookup(key)
    return term.label if term is not None else key
