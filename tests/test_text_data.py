"""Text datasets: the bundled WordNet subset and the text:FILE spec, including hostile files."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from layerscope.data import load_dataset
from layerscope.data.text import WORDNET_DIR, TextDataset, load_text_file, load_wordnet
from layerscope.exceptions import DataError

REPO = Path(__file__).resolve().parents[1]


def test_wordnet_bundle_is_balanced_and_licensed() -> None:
    ds = load_dataset("wordnet")
    assert isinstance(ds, TextDataset)
    assert len(ds) == 3000 and len(ds.classes) == 10
    assert ds.classes == sorted(ds.classes) and all(c.startswith("noun.") for c in ds.classes)
    assert (ds.class_counts() == 300).all()
    assert len(set(ds.texts)) == len(ds.texts)  # no duplicate text, so no train/test leak
    text, label = ds[0]
    assert isinstance(text, str) and text.strip() and isinstance(label, int)
    assert "Princeton University" in (WORDNET_DIR / "LICENSE").read_text(encoding="utf-8")
    assert (WORDNET_DIR / "README.md").is_file()


def test_wordnet_split_is_seeded_stratified_and_disjoint() -> None:
    tr, te, al = (load_dataset(f"wordnet:{s}") for s in ("train", "test", "all"))
    assert len(tr) == 2400 and len(te) == 600 and len(al) == 3000
    assert (tr.class_counts() == 240).all() and (te.class_counts() == 60).all()
    assert not set(tr.texts) & set(te.texts)
    assert sorted(np.concatenate([tr.sample_ids, te.sample_ids]).tolist()) == sorted(al.sample_ids.tolist())
    assert load_dataset("wordnet:test").texts == te.texts  # same split on every call
    # labels still name the right lexname after the split
    lex = {t: al.classes[y] for t, y in zip(al.texts, al.labels)}
    assert all(lex[t] == te.classes[y] for t, y in zip(te.texts, te.labels))


def test_wordnet_class_subset_renumbers_in_given_order() -> None:
    full = load_wordnet()
    ds = load_dataset("wordnet:classes=plant,noun.animal:test")
    assert ds.classes == ["noun.plant", "noun.animal"]
    assert len(ds) == 120
    lex = {t: full.classes[y] for t, y in zip(full.texts, full.labels)}
    assert all(lex[t] == ds.classes[y] for t, y in zip(ds.texts, ds.labels))
    small = load_dataset("wordnet:per_class=7:classes=food")
    assert len(small) == 7 and small.classes == ["noun.food"]
    # the first 7 food glosses in file order
    food = [t for t, y in zip(full.texts, full.labels) if full.classes[y] == "noun.food"][:7]
    assert small.texts == food


@pytest.mark.parametrize(
    "spec, words",
    [
        ("wordnet:classes=animal,mineral", "No lexname 'mineral'"),
        ("wordnet:colour=red", "Unknown option 'colour'"),
        ("wordnet:test:classes=animal", "must come last"),
        ("wordnet:per_class=x", "per_class must be an integer"),
        ("wordnet:per_class=0", "per_class must be >= 1"),
        ("wordnet:classes=animal,animal", "given twice"),
        ("wordnet:nonsense", "expected key=value"),
    ],
)
def test_wordnet_bad_specs(spec: str, words: str) -> None:
    with pytest.raises(DataError, match=words):
        load_dataset(spec)


def test_wordnet_subset_reproducible_from_source(shared_data: Path) -> None:
    src = shared_data / "wordnet" / "noun_glosses.tsv.gz"
    if not src.exists():
        pytest.skip("WordNet glosses not in the shared data folder")
    spec = importlib.util.spec_from_file_location("text_wordnet_subset", REPO / "bench" / "text_wordnet_subset.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.select(src)
    bundled = load_wordnet()
    assert [r["definition"] for r in rows] == bundled.texts
    assert [r["lexname"] for r in rows] == [bundled.classes[y] for y in bundled.labels]


def _tsv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_text_tsv_labels_from_names_and_numeric_order(tmp_path: Path) -> None:
    p = _tsv(tmp_path / "d.tsv", "label\ttext\n10\tten apples\n2\ttwo pears\n2\tanother two\n10\tmore ten\n")
    ds = load_dataset(f"text:{p}")
    assert ds.classes == ["2", "10"]  # numeric, not string, order
    assert ds.texts == ["ten apples", "two pears", "another two", "more ten"]
    assert ds.labels.tolist() == [1, 0, 0, 1]
    named = _tsv(tmp_path / "n.tsv", "sentence\ttopic\tid\nA cat.\tanimal\t1\nAn oak.\tplant\t2\n")
    ds2 = load_dataset(f"text:{named}:text=sentence,label=topic")
    assert ds2.classes == ["animal", "plant"] and ds2[1] == ("An oak.", 1)


def test_text_jsonl_gz_split_and_collate(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl.gz"
    rows = [{"text": f"sentence number {i}", "label": ["x", "y"][i % 2]} for i in range(20)]
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")
    tr, te = load_dataset(f"text:{p}:train"), load_dataset(f"text:{p}:test")
    assert len(tr) == 16 and len(te) == 4 and not set(tr.texts) & set(te.texts)
    texts, labels = next(iter(DataLoader(te, batch_size=4)))
    assert list(texts) == te.texts and labels.tolist() == te.labels.tolist()
    assert te.y.dtype.is_floating_point is False


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("a.tsv", "text\tlabel\nhello\tx\n   \ty\n", "line 3: the text is empty"),
        ("b.tsv", "text\tlabel\nhello\t\n", "line 2: the label is empty"),
        ("c.tsv", "sentence\tlabel\nhello\tx\n", "no column 'text'"),
        ("d.tsv", "text\tlabel\nhello\tx\textra\n", "line 2: 3 tab-separated fields"),
        ("e.tsv", "text\tlabel\n", "no data rows"),
        ("f.tsv", "", "is empty"),
        ("g.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"\n', "line 2: not valid JSON"),
        ("h.jsonl", '["a", "x"]\n', "expected a JSON object"),
        ("i.jsonl", '{"text": "a", "lab": "x"}\n', "no key 'label'"),
        ("j.jsonl", '{"text": 5, "label": "x"}\n', "must be a string"),
        ("k.jsonl", '{"text": "a", "label": 1.5}\n', "string or an integer"),
        ("l.csv", "text,label\na,b\n", "must be a .tsv or .jsonl"),
    ],
)
def test_text_hostile_files(tmp_path: Path, name: str, content: str, words: str) -> None:
    p = _tsv(tmp_path / name, content)
    with pytest.raises(DataError, match=words) as err:
        load_dataset(f"text:{p}")
    assert name in str(err.value)


def test_text_non_utf8_huge_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "latin.tsv"
    p.write_bytes("text\tlabel\ncaf\u00e9\tx\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.tsv is not UTF-8 text \(invalid byte at line 2\)"):
        load_dataset(f"text:{p}")
    big = _tsv(tmp_path / "big.tsv", "text\tlabel\n" + "word word\tx\n" * 1000)
    with pytest.raises(DataError, match="big.tsv is .* the limit"):
        load_text_file(big, max_bytes=1000)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"text:{tmp_path / 'nope.tsv'}")
    with pytest.raises(DataError, match="needs a (file|path)"):
        load_dataset("text:")
    bad_gz = tmp_path / "x.tsv.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="x.tsv.gz"):
        load_dataset(f"text:{bad_gz}")
