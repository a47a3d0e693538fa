"""Labelled text datasets: the bundled WordNet glosses and ``.tsv`` / ``.jsonl`` files.

Data specs (``--data``):

==============================================  ==========================================================
``wordnet``                                     the bundled WordNet 3.0 subset, all 3,000 noun glosses of
                                                ten lexicographer files; ``wordnet:train`` (2,400),
                                                ``wordnet:test`` (600), ``wordnet:all``
``wordnet:classes=animal,plant[:SPLIT]``        only those lexnames (``animal`` and ``noun.animal`` both
                                                work); labels are renumbered 0.. in the order given
``wordnet:per_class=100[:SPLIT]``               the first 100 (in offset order) of each class, before
                                                the split
``text:FILE.tsv|FILE.jsonl[:SPLIT]``            a text column ``text`` and a label column ``label``
``text:FILE:text=COL,label=COL[:SPLIT]``        other column names
==============================================  ==========================================================

Options are ``key=value`` parts after the kind (or the file), separated by ``:``; several keys
may share one part when separated by ``,`` only where the value cannot hold commas
(``text=sentence,label=topic``); ``classes=`` takes the rest of its part.

Decisions, stated once:

* The **text of a WordNet sample** is its gloss's definition (not its lemmas, which would name the
  class in many cases); the **label** is the lexicographer file (``noun.animal`` ...).
* **Splits** are seeded and stratified: 80 % train, 20 % test per class
  (:func:`split_indices`, ``random_state=0``); the default split is ``all``.
* **Labels of a file** are names: the class list is the sorted set of the label column's values,
  sorted numerically when every value is an integer (so ``0 .. 9`` keep their meaning). A label is
  index into :attr:`TextDataset.classes`.
* **TSV** files are tab-separated, UTF-8, with a header row and no quoting (a field cannot hold a
  tab or a newline). **JSONL** files hold one JSON object per line. Both are read whole into
  memory; files over ``max_bytes`` (default 256 MB) are refused.
* Empty or whitespace-only texts, missing labels, missing columns, ragged rows, invalid UTF-8 and
  invalid JSON are refused with a :class:`~layerscope.exceptions.DataError` that names the file
  and the line.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..exceptions import DataError

__all__ = ["TextDataset", "load_wordnet", "load_text_file", "load_text_spec", "split_indices", "WORDNET_DIR"]

WORDNET_DIR = Path(__file__).resolve().parents[1] / "bundled" / "wordnet"
MAX_BYTES = 256 * 1024 * 1024
TEST_FRACTION = 0.2
_SPLITS = ("train", "test", "all")


class TextDataset(Dataset):  # type: ignore[type-arg]
    """An in-memory labelled text dataset; items are ``(text: str, label: int)``.

    Attributes
    ----------
    texts
        The texts, one per sample.
    classes
        Class names; a label is an index into it.
    name
        The data spec it came from.
    sample_ids
        Row (line) of each sample in its source file, 0-based among the data rows.
    meta
        Per-sample string columns kept from the source (e.g. ``{"lemmas": [...]}``).
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        *,
        classes: Sequence[str],
        name: str = "",
        sample_ids: np.ndarray | None = None,
        meta: dict[str, list[str]] | None = None,
    ) -> None:
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(texts) != len(lab):
            raise DataError(f"{name}: {len(texts)} texts but {len(lab)} labels; they must match.")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(classes)):
            raise DataError(f"{name}: labels must lie in 0..{len(classes) - 1} (one per class name); got {lab.min()}..{lab.max()}.")
        self.texts = [str(t) for t in texts]
        self.labels = lab
        self.classes = [str(c) for c in classes]
        self.name = name
        self.sample_ids = np.arange(len(lab)) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
        self.meta = {k: list(v) for k, v in (meta or {}).items()}

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], int(self.labels[i])

    @property
    def y(self) -> torch.Tensor:
        """Labels as an int64 tensor."""
        return torch.from_numpy(self.labels.copy())

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TextDataset":
        """The samples at ``indices``, in that order (classes unchanged)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return TextDataset(
            [self.texts[i] for i in idx],
            self.labels[idx],
            classes=self.classes,
            name=self.name,
            sample_ids=self.sample_ids[idx],
            meta={k: [v[i] for i in idx] for k, v in self.meta.items()},
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def __repr__(self) -> str:
        return f"TextDataset({self.name!r}, n={len(self)}, classes={len(self.classes)})"


def split_indices(labels: np.ndarray, split: str, random_state: int = 0) -> np.ndarray:
    """Row indices of ``split`` (``train``: 80 %, ``test``: 20 % of each class, seeded; ``all``), sorted."""
    if split not in _SPLITS:
        raise DataError(f"Unknown split {split!r}; expected one of {', '.join(_SPLITS)}.")
    n = len(labels)
    if split == "all":
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    test = np.zeros(n, dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = int(round(len(rows) * TEST_FRACTION))
        test[rng.permutation(rows)[:k]] = True
    return np.flatnonzero(test if split == "test" else ~test)


def _read_text(path: Path, max_bytes: int) -> str:
    if not path.is_file():
        raise DataError(f"Text data file {path} does not exist (or is not a file).")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"{path} is {size / 1e6:.0f} MB; text files are read whole and the limit is {max_bytes / 1e6:.0f} MB. "
            "Take a subset of the rows, or pass max_bytes= in Python."
        )
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise DataError(f"{path} decompresses to more than {max_bytes / 1e6:.0f} MB (the limit); take a subset.")
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path} cannot be read (corrupt or truncated gzip?): {err}") from err
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (invalid byte at line {line}); re-save it as UTF-8.") from err


def _rows_tsv(path: Path, content: str) -> tuple[list[str], list[list[str]]]:
    lines = content.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path} is empty; expected a header row (e.g. 'text<TAB>label') and data rows.")
    header = lines[0].split("\t")
    rows: list[list[str]] = []
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{path}, line {i}: {len(fields)} tab-separated fields but the header has {len(header)}; "
                "fields cannot hold tabs (no quoting in TSV)."
            )
        rows.append(fields)
    return header, rows


def _rows_jsonl(path: Path, content: str) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {i}: not valid JSON ({err.msg}); expected one JSON object per line.") from err
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {i}: expected a JSON object per line, got {type(obj).__name__}.")
        out.append((i, obj))
    return out


def _class_list(values: list[str]) -> list[str]:
    uniq = sorted(set(values))
    if all(re.fullmatch(r"-?\d+", v) for v in uniq):
        uniq.sort(key=int)
    return uniq


def load_text_file(
    path: str | Path,
    *,
    text_col: str = "text",
    label_col: str = "label",
    split: str = "all",
    name: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> TextDataset:
    """A :class:`TextDataset` from a ``.tsv``/``.jsonl`` file (optionally ``.gz``); see the module docstring.

    Parameters
    ----------
    path
        The file; the format comes from the suffix (``.tsv``, ``.jsonl``, each optionally ``.gz``).
    text_col, label_col
        Column (TSV header) or key (JSONL) of the text and of the label name.
    split
        ``all`` (default), ``train`` or ``test`` (seeded stratified 80/20).
    name
        The dataset's name (default: ``text:PATH``).
    max_bytes
        Refuse files larger than this.
    """
    p = Path(path)
    fmt = p.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if fmt not in ("tsv", "jsonl"):
        raise DataError(f"{p}: text data must be a .tsv or .jsonl file (optionally .gz); got {p.name!r}.")
    content = _read_text(p, max_bytes)
    texts: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    if fmt == "tsv":
        header, rows = _rows_tsv(p, content)
        missing = [c for c in (text_col, label_col) if c not in header]
        if missing:
            raise DataError(
                f"{p} has no column {missing[0]!r}; its header has {header}. Name the columns 'text' and 'label', "
                "or give them: text:FILE:text=COL,label=COL."
            )
        ti, li = header.index(text_col), header.index(label_col)
        for k, r in enumerate(rows):
            texts.append(r[ti])
            labels.append(r[li])
            lines.append(k + 2)
    else:
        for ln, obj in _rows_jsonl(p, content):
            for c in (text_col, label_col):
                if c not in obj:
                    raise DataError(
                        f"{p}, line {ln}: no key {c!r} (keys: {sorted(obj)[:8]}). Use keys 'text' and 'label', or "
                        "give them: text:FILE:text=KEY,label=KEY."
                    )
            t, lab = obj[text_col], obj[label_col]
            if not isinstance(t, str):
                raise DataError(f"{p}, line {ln}: {text_col!r} must be a string, got {type(t).__name__}.")
            if isinstance(lab, bool) or not isinstance(lab, (str, int)):
                raise DataError(f"{p}, line {ln}: {label_col!r} must be a string or an integer, got {type(lab).__name__}.")
            texts.append(t)
            labels.append(str(lab))
            lines.append(ln)
    if not texts:
        raise DataError(f"{p} has a header but no data rows; expected at least one labelled text.")
    for t, lab, ln in zip(texts, labels, lines):
        if not t.strip():
            raise DataError(f"{p}, line {ln}: the text is empty; remove the row or fill it in.")
        if not lab.strip():
            raise DataError(f"{p}, line {ln}: the label is empty; every row needs a label.")
    labels = [lab.strip() for lab in labels]
    classes = _class_list(labels)
    index = {c: i for i, c in enumerate(classes)}
    ds = TextDataset(
        texts, [index[lab] for lab in labels], classes=classes, name=name or f"text:{p}",
        sample_ids=np.arange(len(texts)),
    )
    return ds.subset(split_indices(ds.labels, split)) if split != "all" else ds


def load_wordnet(
    split: str = "all",
    *,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    path: str | Path | None = None,
    name: str | None = None,
) -> TextDataset:
    """The bundled WordNet 3.0 noun glosses (definition text, lexname label); see the module docstring.

    Parameters
    ----------
    split
        ``all`` (default), ``train`` or ``test``.
    classes
        Lexnames to keep (``"animal"`` or ``"noun.animal"``), in the order of the labels; default all
        ten, sorted.
    per_class
        Keep the first ``per_class`` glosses (offset order) of each class before splitting.
    path
        Another ``glosses.tsv[.gz]`` with the same columns (default: the bundled one).
    """
    p = Path(path) if path is not None else WORDNET_DIR / "glosses.tsv.gz"
    content = _read_text(p, MAX_BYTES)
    header, rows = _rows_tsv(p, content)
    need = ("synset_offset", "lexname", "lemmas", "definition")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{p} lacks WordNet columns {missing}; expected {list(need)}.")
    col = {c: header.index(c) for c in need}
    available = sorted({r[col["lexname"]] for r in rows})
    if classes is None:
        chosen = available
    else:
        chosen = []
        for c in classes:
            full = c.strip() if c.strip().startswith("noun.") else f"noun.{c.strip()}"
            if full not in available:
                raise DataError(f"No lexname {c!r} in the WordNet data; available: {', '.join(available)}.")
            if full in chosen:
                raise DataError(f"Lexname {full!r} given twice in classes=.")
            chosen.append(full)
        if not chosen:
            raise DataError("classes= is empty; name at least one lexname, e.g. classes=animal,plant.")
    if per_class is not None and per_class < 1:
        raise DataError(f"per_class must be >= 1, got {per_class}.")
    index = {c: i for i, c in enumerate(chosen)}
    taken = {c: 0 for c in chosen}
    keep: list[int] = []
    for k, r in enumerate(rows):
        lex = r[col["lexname"]]
        if lex in index and (per_class is None or taken[lex] < per_class):
            taken[lex] += 1
            keep.append(k)
    for k in keep:
        if not rows[k][col["definition"]].strip():
            raise DataError(f"{p}, line {k + 2}: empty definition.")
    ds = TextDataset(
        [rows[k][col["definition"]] for k in keep],
        [index[rows[k][col["lexname"]]] for k in keep],
        classes=chosen,
        name=name or "wordnet",
        sample_ids=np.asarray(keep, dtype=np.int64),
        meta={
            "synset_offset": [rows[k][col["synset_offset"]] for k in keep],
            "lemmas": [rows[k][col["lemmas"]] for k in keep],
        },
    )
    return ds.subset(split_indices(ds.labels, split)) if split != "all" else ds


def _parse_options(parts: list[str], spec: str, allowed: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """``key=value`` parts (``classes=`` keeps its commas) and an optional trailing split."""
    opts: dict[str, str] = {}
    split = "all"
    for i, part in enumerate(parts):
        part = part.strip()
        if not part:
            continue
        if part in _SPLITS:
            if i != len(parts) - 1:
                raise DataError(f"In {spec!r} the split {part!r} must come last.")
            split = part
            continue
        if "=" not in part:
            raise DataError(
                f"Cannot read {part!r} in data spec {spec!r}; expected key=value options ({', '.join(allowed)}) "
                f"or a split ({', '.join(_SPLITS)})."
            )
        items = [part] if part.startswith("classes=") else part.split(",")
        for item in items:
            key, _, value = item.partition("=")
            key = key.strip()
            if key not in allowed:
                raise DataError(f"Unknown option {key!r} in data spec {spec!r}; expected one of {', '.join(allowed)}.")
            if key in opts:
                raise DataError(f"Option {key!r} given twice in {spec!r}.")
            opts[key] = value.strip()
    return opts, split


def load_text_spec(kind: str, rest: str | None, spec: str) -> TextDataset:
    """Load a ``wordnet[...]`` or ``text:FILE[...]`` spec (``rest`` is what follows ``kind:``)."""
    parts = rest.split(":") if rest else []
    if kind == "wordnet":
        opts, split = _parse_options(parts, spec, ("classes", "per_class"))
        per: int | None = None
        if "per_class" in opts:
            try:
                per = int(opts["per_class"])
            except ValueError as err:
                raise DataError(f"per_class must be an integer in {spec!r}, got {opts['per_class']!r}.") from err
        cls = [c for c in opts["classes"].split(",") if c.strip()] if "classes" in opts else None
        if cls is not None and not cls:
            raise DataError(f"classes= is empty in {spec!r}; e.g. wordnet:classes=animal,plant.")
        return load_wordnet(split, classes=cls, per_class=per, name=spec)
    if kind == "text":
        if not parts or not parts[0].strip():
            raise DataError("The text data kind needs a file: text:FILE.tsv or text:FILE.jsonl.")
        # the file is everything up to the first part that is an option or a split
        k = 1
        while k < len(parts) and "=" not in parts[k] and parts[k].strip() not in _SPLITS:
            k += 1
        path = ":".join(parts[:k])
        opts, split = _parse_options(parts[k:], spec, ("text", "label"))
        return load_text_file(path, text_col=opts.get("text", "text"), label_col=opts.get("label", "label"), split=split, name=spec)
    raise DataError(f"Not a text data kind: {kind!r}.")
