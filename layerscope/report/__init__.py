"""The HTML report: one self-contained file from the result folders the analysis commands wrote.

:func:`build_report` scans a folder recursively for ``result.json`` files (the common shape is
described in :mod:`layerscope.results`) and ``run.json`` files of training runs, and writes a
single HTML file with everything inlined (styles, a small hand-written script, every figure as a
base64 data URI), so it opens offline and from ``file://``. It computes no analysis.

Each section is designed per analysis (:data:`~layerscope.report.builder.RENDERERS`), in the
order of what its paper shows: the paper's figure first, then one curated table of the numbers
(each shown once), then the parameters and the raw ``result.json`` behind toggles. Every metric
label comes from :mod:`layerscope.report.glossary` (a label and a one-line definition, shown
next to the table); keys it does not define stay in the raw data, never under a made-up name.
Summaries over seeds print ``±`` only with two seeds or more, and say how many. Hand-made SVG
charts use 1/2/5 × 10^k ticks, accuracy axes bounded to [0, 1] and legends below the data.
Wide figures (the top-9 grid) keep their natural size in a box that scrolls sideways.

Results holding 2-D point sets (``projection``, ``neurons``, speech, ...) get interactive scatter
plots. The fields read are documented in :mod:`layerscope.report._scatter`; in short a dict with
``embedding: [[x, y], ...]`` (or ``x`` and ``y``, or ``embedding_file: "name.npz"``), optional
``labels``, ``predictions``, ``sample_ids``, ``classes``, ``speakers`` / ``cluster`` /
``extra_labels``, ``values``, ``thumbnails`` or ``sprite``, ``layer``, ``epoch`` /
``checkpoint``, ``method``, ``nh``, ``ac``. The plots of one result are linked (same
observations, layers × checkpoints): a toolbar colours them by true class (the default; speaker
for speaker embeddings), predicted class or any other label; a legend click isolates a class
(shift-click hides it), and a sample found by id or clicked is ringed in every plot of the group.
Without thumbnails, image thumbnails are fetched from the result's ``data`` spec by
``sample_ids``. ``run.json`` files of training runs make one "Training runs" section.

Sections follow the order of :data:`ANALYSIS_TITLES`, then unknown analyses by folder.

All text from the data is HTML-escaped; JSON inside ``<script>`` has ``<``, ``>``, ``&`` escaped.
"""

from .builder import ANALYSIS_TITLES, ResultFolder, build_report, find_results

__all__ = ["build_report", "find_results", "ResultFolder", "ANALYSIS_TITLES"]
