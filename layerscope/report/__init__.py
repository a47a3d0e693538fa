"""The HTML report: one self-contained file from the result folders the analysis commands wrote.

:func:`build_report` scans a folder recursively for ``result.json`` files (the common shape is
described in :mod:`layerscope.results`) and ``run.json`` files of training runs, and writes a
single HTML file with everything inlined (styles, a small hand-written script, every figure as a
base64 data URI), so it opens offline and from ``file://``. It computes no analysis.

Rendering, by the result's ``"analysis"``:

- every result: its ``figures`` (``[{"path", "title", "caption"}]``, paths relative to the
  result folder; PNG/JPEG/SVG inlined, WAV/MP3/OGG as audio players), ``metrics`` (scalars as a
  table, ``{row: {column: value}}`` as one table, lists of records as tables), any other
  analysis-specific list of records as a table (number lists of 9+ values as sparklines), and
  ``parameters`` (folded);
- ``capture`` / ``layers``: the ``model`` description and the ``layers`` table
  (``name, type, output_shape, total_params, depth``, as :class:`layerscope.layers.LayerInfo`);
- any result holding 2-D point sets (``projection``, ``neurons``, speech, ...): one interactive
  scatter plot per point set (zoom, pan, hover/tap tooltip). The fields read are documented in
  :mod:`layerscope.report._scatter`; in short a dict with ``embedding: [[x, y], ...]`` (or ``x``
  and ``y``, or ``embedding_file: "name.npz"``), optional ``labels``, ``predictions``,
  ``sample_ids``, ``classes``, ``speakers`` / ``extra_labels``, ``values``, ``thumbnails`` or
  ``sprite``, ``layer``, ``epoch`` / ``checkpoint``, ``method``, ``nh``, ``ac``. Without
  thumbnails, image thumbnails are fetched from the result's ``data`` spec by ``sample_ids``;
- ``cka`` (and ``probe``): square number matrices (with ``layers`` names) as shaded tables;
  per-layer numbers as a line chart;
- ``run.json`` files: one "Training runs" section (accuracy per epoch, checkpoints);
- ``demo`` (written by ``layerscope demo``): the table of its steps, shown first.

Sections follow the order of :data:`ANALYSIS_TITLES`, then unknown analyses by folder.

All text from the data is HTML-escaped; JSON inside ``<script>`` has ``<``, ``>``, ``&`` escaped.
"""

from .builder import ANALYSIS_TITLES, ResultFolder, build_report, find_results

__all__ = ["build_report", "find_results", "ResultFolder", "ANALYSIS_TITLES"]
