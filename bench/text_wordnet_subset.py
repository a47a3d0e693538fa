"""Make the bundled WordNet subset (layerscope/bundled/wordnet/) from the full noun gloss table.

Selection (deterministic, reproducible):

1. Read ``noun_glosses.tsv.gz`` (all 82,115 noun synsets of WordNet 3.0; columns synset_offset,
   lexname, lemmas, definition, examples) from the shared data folder.
2. Keep the rows of the ten lexicographer files in ``CLASSES`` whose definition is not empty, and
   drop every row whose definition (lower-cased, whitespace collapsed) occurs more than once in the
   whole table, so that no two samples share a text (no leak between the train and test splits).
3. Per class, draw ``PER_CLASS`` rows without replacement with ``numpy.random.default_rng(SEED)``
   (classes in sorted order, one generator), then sort all chosen rows by synset offset.
4. Write them with the same columns to ``glosses.tsv.gz`` (gzip mtime 0, so reruns give the same
   bytes), and copy the WordNet license notice next to it.

Usage: python bench/text_wordnet_subset.py [--src DIR] [--out DIR]
(``--src`` defaults to ``$LAYERSCOPE_SHARED_DATA/wordnet``, ``--out`` to layerscope/bundled/wordnet).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

CLASSES = (
    "noun.animal",
    "noun.artifact",
    "noun.body",
    "noun.communication",
    "noun.food",
    "noun.location",
    "noun.object",
    "noun.person",
    "noun.plant",
    "noun.substance",
)
PER_CLASS = 300
SEED = 20061  # fixed; any value works, this one is recorded in the bundle's README
COLUMNS = ["synset_offset", "lexname", "lemmas", "definition", "examples"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def select(src: Path) -> list[dict[str, str]]:
    with gzip.open(src, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    counts = Counter(_norm(r["definition"]) for r in rows)
    rng = np.random.default_rng(SEED)
    chosen: list[dict[str, str]] = []
    for cls in sorted(CLASSES):
        pool = [r for r in rows if r["lexname"] == cls and r["definition"].strip() and counts[_norm(r["definition"])] == 1]
        if len(pool) < PER_CLASS:
            raise SystemExit(f"{cls}: only {len(pool)} usable glosses, need {PER_CLASS}")
        idx = rng.choice(len(pool), size=PER_CLASS, replace=False)
        chosen.extend(pool[int(i)] for i in idx)
    chosen.sort(key=lambda r: r["synset_offset"])
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("LAYERSCOPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--src", type=Path, default=shared / "wordnet")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "layerscope" / "bundled" / "wordnet")
    a = ap.parse_args()
    rows = select(a.src / "noun_glosses.tsv.gz")
    a.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    for r in [dict(zip(COLUMNS, COLUMNS)), *rows]:  # plain tab-joined lines: fields hold no tab or newline
        buf.write("\t".join(r[k] for k in COLUMNS) + "\n")
    with open(a.out / "glosses.tsv.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    shutil.copyfile(a.src / "COPYRIGHT.debian", a.out / "LICENSE")
    per = Counter(r["lexname"] for r in rows)
    print(f"wrote {len(rows)} glosses of {len(per)} classes to {a.out}: {dict(sorted(per.items()))}")


if __name__ == "__main__":
    main()
