"""x-vectors vs frame-DNN means on unseen FSDD speakers (Garcia-Romero et al. 2017), leave-speakers-out.

Runs :func:`layerscope.speech.speaker_embedding_study` on FSDD from ``$LAYERSCOPE_SHARED_DATA``
(``fsdd/fsdd_recordings.tar.gz``; the bundled copy when unset), single-threaded, and writes
``bench/results/xvector_fsdd[_TAG].json`` (every fold, the summary, setup and load average) and
``.md`` (the table) and ``.png`` (one dot per fold), rewritten after every fold.

    nice -n 10 python bench/xvector_fsdd.py [--normalize global] [--n-test 2] [--max-folds 15]
        [--xvector-epochs 15] [--dnn-epochs 5] [--dnn-frame-step 1] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from layerscope.data import load_fsdd
from layerscope.speech import FeatureConfig, speaker_embedding_study, speaker_folds
from layerscope.speech.plots import plot_xvector_folds
from layerscope.speech.xvector_study import _spread

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--normalize", default="global", choices=["global", "utterance", "none"])
    ap.add_argument("--n-test", type=int, default=2)
    ap.add_argument("--max-folds", type=int, default=None)
    ap.add_argument("--xvector-epochs", type=int, default=15)
    ap.add_argument("--dnn-epochs", type=int, default=5)
    ap.add_argument("--dnn-frame-step", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    shared = os.environ.get("LAYERSCOPE_SHARED_DATA")
    src = Path(shared) / "fsdd" / "fsdd_recordings.tar.gz" if shared else None
    audio = load_fsdd(src if src is not None and src.exists() else None)
    load_before = os.getloadavg()
    folds = speaker_folds(audio.speaker_names, args.n_test, args.max_folds, args.seed)
    name = "xvector_fsdd" + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    for k, fold in enumerate(folds):  # one study call per fold, so the results grow fold by fold
        res = speaker_embedding_study(
            audio, features=FeatureConfig(normalize=args.normalize), folds=[fold],
            xvector_epochs=args.xvector_epochs, dnn_epochs=args.dnn_epochs, dnn_frame_step=args.dnn_frame_step,
            random_state=args.seed,
        )
        rows += [{**r, "fold": k} for r in res.metrics["folds"]]
        write(name, rows, res, args, k + 1, len(folds), time.perf_counter() - t0, load_before, src is not None)
        print(f"fold {k + 1}/{len(folds)} {fold} done after {time.perf_counter() - t0:.0f} s", flush=True)


def write(name: str, rows: list[dict], res: object, args: argparse.Namespace, done: int, total: int, wall: float,
          load_before: tuple[float, float, float], shared: bool) -> None:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = {m: {k: _spread([r[k] for r in rows if r["method"] == m]) for k in ("ari", "purity", "nmi", "eer", "val_accuracy")}
               for m in methods}
    setup = {"data": "FSDD (3,000 recordings, 6 speakers)" if shared else "FSDD (bundled copy)",
             "normalize": args.normalize, "n_test_speakers": args.n_test, "folds_done": done, "folds_planned": total,
             "xvector_epochs": args.xvector_epochs, "dnn_epochs": args.dnn_epochs,
             "dnn_frame_step": args.dnn_frame_step, "seed": args.seed,
             "torch_threads": 1, "wall_s": round(wall, 1), "loadavg_before": [round(v, 2) for v in load_before],
             "loadavg_now": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
             "torch": torch.__version__}
    params = getattr(res, "parameters", {})
    (RESULTS / f"{name}.json").write_text(json.dumps({"setup": setup, "parameters": params, "summary": summary,
                                                      "folds": rows}, indent=1) + "\n")
    fig = plot_xvector_folds(rows, methods)
    fig.savefig(RESULTS / f"{name}.png", dpi=90)
    lines = [f"# Unseen FSDD speakers: x-vector vs frame-DNN means ({name})", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in setup.items()), "",
             "Mean ± sample std across folds [min, max]; folds share speakers (not independent).", "",
             "| method | ARI | purity | EER | val acc (training speakers) |", "|---|---|---|---|---|"]
    for meth in methods:
        s = summary[meth]

        def cell(key: str) -> str:
            v = s[key]
            return "-" if v["mean"] is None else f"{v['mean']:.3f} ± {v['std']:.3f} [{v['min']:.3f}, {v['max']:.3f}]"

        lines.append(f"| {meth} | {cell('ari')} | {cell('purity')} | {cell('eer')} | {cell('val_accuracy')} |")
    lines += ["", "Per fold (x-vector / frame DNN, last hidden layer):", "",
              "| held out | ARI xv | ARI dnn | EER xv | EER dnn |", "|---|---|---|---|---|"]
    for f in sorted({r["fold"] for r in rows}):
        r = {x["method"]: x for x in rows if x["fold"] == f}
        lines.append(f"| {', '.join(r['xvector']['test_speakers'])} | {r['xvector']['ari']:.3f} | "
                     f"{r['frame_dnn']['ari']:.3f} | {r['xvector']['eer']:.3f} | {r['frame_dnn']['eer']:.3f} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
