"""``layerscope text-separability``, ``text-topk`` and ``text-occlude``: the text analyses of
:mod:`layerscope.text` on an ``hf:`` model (default data: the bundled ``wordnet`` glosses)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (allow_pickle_option, app, console, load_data_cli, load_model_cli, memory_budget_option, out_option,
                   parse_indices, parse_list, parse_memory_budget, progress_bar, progress_option, store_option)

MODEL = typer.Option("hf:all-MiniLM-L6-v2", "--model", "-m", help="A text model: hf:FOLDER or hf:INSTALLED_NAME.")
DATA = typer.Option("wordnet", help="Labelled texts: wordnet[:classes=...][:SPLIT] or text:FILE.tsv|jsonl.")
BATCH = typer.Option(64, min=1, help="Texts per forward pass.")


@app.command("text-separability")
def text_separability_cmd(
    model: str = MODEL, out: Path = out_option(), data: str = DATA,
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="Token-state layers (default: embeddings + every block)."),
    n: Optional[int] = typer.Option(None, help="A seeded stratified subset of this many texts (default: all)."),
    method: str = typer.Option("tsne", help="2-D projection: tsne, umap or pca."),
    before_training: bool = typer.Option(True, help="Also measure a re-initialised copy of the model."),
    seed: int = typer.Option(0), batch_size: int = BATCH, allow_pickle: bool = allow_pickle_option(),
    memory_budget_mb: Optional[float] = memory_budget_option(), store: Optional[str] = store_option(),
    progress: bool = progress_option(),
) -> None:
    """Per-layer probe accuracy and NH of pooled token states (masked mean, CLS), trained vs untrained."""
    from ..text import text_separability

    net = load_model_cli(model, None, allow_pickle)
    ds = load_data_cli(data, net)
    with progress_bar(progress) as bar:
        res = text_separability(net, ds, parse_list(layers), n=n, method=method, before_training=before_training,
                                seed=seed, batch_size=batch_size, progress=bar, data_spec=data,
                                memory_budget=parse_memory_budget(memory_budget_mb), store=store)  # type: ignore[arg-type]
    res.save(out)
    for p in res.poolings:
        console.print(f"{p} pooling: classes separate most at [bold]{res.best_layer(p)}[/] "
                      f"(probe {max(res.series('pretrained', p, 'probe_accuracy')):.3f})")
    console.print(f"wrote [bold]{out}[/]")


@app.command("text-topk")
def text_topk_cmd(
    model: str = MODEL, out: Path = out_option(), data: str = DATA,
    layers: str = typer.Option(..., "--layers", "-l", help="Comma-separated token-state layers."),
    units: str = typer.Option("20", help="A count (random units, seeded) or comma-separated unit indices."),
    k: int = typer.Option(9, min=1, help="Texts per unit."),
    seed: int = typer.Option(0), batch_size: int = BATCH, allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Top-k texts and tokens per unit, with the unit's top tokens and lexname purity."""
    from ..exceptions import ParameterError
    from ..text import text_topk

    try:
        u: int | list[int] = int(units) if "," not in units else [int(v) for v in units.split(",") if v.strip()]
    except ValueError as err:
        raise ParameterError(f"--units must be a count or comma-separated integers; got {units!r}.") from err
    net = load_model_cli(model, None, allow_pickle)
    ds = load_data_cli(data, net)
    with progress_bar(progress) as bar:
        res = text_topk(net, ds, parse_list(layers) or [], u, k=k, seed=seed, batch_size=batch_size, progress=bar,
                        data_spec=data)
    res.save(out)
    for layer in res.layers:
        m = res.metrics[layer]
        console.print(f"{layer}: mean purity {m['mean_purity']:.3f} (chance {res.purity_chance:.3f}), "
                      f"{m['units_above_chance']}/{m['units']} units above chance")
    console.print(f"wrote [bold]{out}[/]")


@app.command("text-occlude")
def text_occlude_cmd(
    model: str = MODEL, out: Path = out_option(), data: str = DATA,
    layer: str = typer.Option(..., "--layer", "-l", help="Token-state layer whose pooled output is the target."),
    unit: Optional[int] = typer.Option(None, help="Target unit (default: 1 - cosine similarity of the embedding)."),
    indices: str = typer.Option("0,1,2,3,4,5,6,7,8,9", help="Rows of the data to occlude."),
    mode: str = typer.Option("mask", help="mask ([MASK] token) or drop (remove the tokens)."),
    ngram: int = typer.Option(1, min=1, help="Tokens occluded together."),
    pool: str = typer.Option("mean", help="Pooling of the layer's tokens: mean, max or cls."),
    allow_pickle: bool = allow_pickle_option(), progress: bool = progress_option(),
) -> None:
    """Occlusion for text: mask or drop each token (n-gram) and measure a unit or the embedding similarity."""
    from ..text import text_occlusion

    net = load_model_cli(model, None, allow_pickle)
    ds = load_data_cli(data, net)
    rows = parse_indices(indices, len(ds))
    with progress_bar(progress) as bar:
        res = text_occlusion(net, ds, layer, unit=unit, pool=pool, mode=mode, ngram=ngram,
                             indices=None if rows is None else [int(r) for r in rows], progress=bar, data_spec=data)
    res.save(out)
    console.print(f"{res.metrics['n_variants']} occluded variants of {res.metrics['n_texts']} texts; "
                  f"mean |change| {res.metrics['mean_abs_change']:.4g}; wrote [bold]{out}[/]")
