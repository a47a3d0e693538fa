"""Measurement: top-k contexts and text occlusion on all-MiniLM-L6-v2 with the WordNet glosses.

Issue 14, "Done means" 2 and 3:

* top-k contexts (k = 9) for 20 units (seeded random) of two layers over all 3,000 bundled glosses,
  with the lexname purity of each unit's top-k vs the purity of 9 random glosses;
* text occlusion (each token masked, and each token dropped) of 10 glosses (one per lexname),
  target: a unit of the last block (masked-mean pooled) and the sentence-embedding similarity;
  equal to a hand loop (one plain ``model(**inputs)`` per occluded text): max abs difference.

Usage: python bench/text_topk_occlusion.py [--layers encoder.layer.2,encoder.layer.5] [--out DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def hand_occlusion(model: torch.nn.Module, text: str, mode: str, unit: int | None) -> list[float]:
    """One forward pass per occluded variant, no batching, no padding (the reference)."""
    tok = model.layerscope_tokenizer
    skip = set(tok.all_special_ids) - {tok.unk_token_id}
    enc = model.layerscope_tokenize([text])
    ids = enc["input_ids"][0].tolist()

    def emb(e: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return model(**e).last_hidden_state[0].mean(0).double()

    base = emb(enc)
    out = []
    for i, t in enumerate(ids):
        if t in skip:
            continue
        if mode == "mask":
            e = {k: v.clone() for k, v in enc.items()}
            e["input_ids"][0, i] = tok.mask_token_id
        else:
            keep = [j for j in range(len(ids)) if j != i]
            e = {k: v[:, keep] for k, v in enc.items()}
        x = emb(e)
        out.append(float(base[unit] - x[unit]) if unit is not None
                   else float(1 - torch.nn.functional.cosine_similarity(base, x, dim=0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hf:all-MiniLM-L6-v2")
    ap.add_argument("--data", default="wordnet")
    ap.add_argument("--layers", default="encoder.layer.2,encoder.layer.5")
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.text import text_occlusion, text_topk

    model = load_model(a.model)
    data = load_dataset(a.data)
    t0 = time.perf_counter()
    r = text_topk(model, data, a.layers.split(","), a.units, k=9, data_spec=a.data)
    print(f"top-k: {len(data)} texts, {time.perf_counter() - t0:.0f} s; purity of 9 random glosses: {r.purity_chance:.3f}")
    for layer in r.layers:
        pur = [s["purity"] for s in r.summaries[layer]]
        print(f"  {layer}: mean purity {np.mean(pur):.3f}, median {np.median(pur):.3f}, "
              f"{sum(p > r.purity_chance for p in pur)}/{len(pur)} units above chance")
        for s in r.summaries[layer][:5]:
            print(f"    unit {s['unit']:>3}: purity {s['purity']:.2f} ({s['majority_class']}), top tokens "
                  f"{', '.join(f'{t}({c})' for t, c in s['top_tokens'][:4])}")
    if a.out:
        r.save(f"{a.out}/topk")
    rows = [int(np.flatnonzero(data.labels == c)[0]) for c in range(min(10, len(data.classes)))]
    last = a.layers.split(",")[-1]
    if last != "encoder.layer.5":
        raise SystemExit("the hand loop reads last_hidden_state: keep encoder.layer.5 as the last layer")
    for mode in ("mask", "drop"):
        for unit in (7, None):
            t0 = time.perf_counter()
            occ = text_occlusion(model, data, last, unit=unit, mode=mode, indices=rows, data_spec=a.data)
            secs = time.perf_counter() - t0
            diff = max(abs(x - y) for t in occ.texts for x, y in zip(t["changes"], hand_occlusion(model, t["text"], mode, unit)))
            n_var = sum(len(t["changes"]) for t in occ.texts)
            print(f"occlusion {mode}, {'unit 7' if unit is not None else 'similarity'}: {len(rows)} texts, {n_var} variants, "
                  f"{secs:.1f} s; max |layerscope - hand loop| = {diff:.2e}; top spans {occ.metrics['most_important_spans'][:5]}")
            if a.out:
                occ.save(f"{a.out}/occlusion_{mode}_{'unit' if unit is not None else 'similarity'}")


if __name__ == "__main__":
    main()
