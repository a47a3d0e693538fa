"""A tiny randomly initialised BERT with a tiny WordPiece tokenizer, built in the test (no files)."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "a an the of or and to in on for with by as is that which who from its it be are was "
    "animal plant tree dog cat bird fish flower leaf root seed fruit food meat bread milk cheese "
    "tool machine device car ship house building room door wall table chair knife cup box "
    "person man woman child worker king teacher doctor soldier writer body hand head eye heart "
    "bone blood skin arm leg place city country river mountain sea island region area town "
    "word letter book story message speech language name sign song poem substance water salt "
    "metal gold iron oil acid gas stone rock sand star sun moon planet small large young old "
    "long short red green white black used made kept found having having grown genus family "
    "species order class member kind sort part piece unit group set any some one two many "
    "wild domestic edible sweet hot cold hard soft ( ) , ; ."
).split()


def write_tiny_bert(folder: Path, *, layers: int = 2, hidden: int = 32, seed: int = 12345) -> Path:
    """Save a random tiny ``BertModel`` and its WordPiece tokenizer to ``folder``; return it."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(SPECIALS + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")))
    vfile = folder / "vocab.txt"
    vfile.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    import inspect

    if "vocab" in inspect.signature(transformers.BertTokenizerFast.__init__).parameters:  # transformers >= 5
        tok = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    else:
        tok = transformers.BertTokenizerFast(vocab_file=str(vfile), do_lower_case=True)
    tok.save_pretrained(str(folder))
    cfg = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    model = transformers.BertModel(cfg).eval()
    model.save_pretrained(str(folder))
    return folder
