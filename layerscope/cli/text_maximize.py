"""``layerscope text-maximize``: activation maximization for text (:func:`layerscope.text.text_maximize`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import allow_pickle_option, app, console, load_data_cli, load_model_cli, out_option, progress_bar, progress_option


@app.command("text-maximize")
def text_maximize_cmd(
    model: str = typer.Option("hf:all-MiniLM-L6-v2", "--model", "-m", help="A text model: hf:FOLDER or hf:INSTALLED_NAME."),
    out: Path = out_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="Token-state layer (e.g. encoder.layer.5)."),
    units: str = typer.Option("10", help="A count (random units, seeded) or comma-separated unit indices."),
    data: Optional[str] = typer.Option("wordnet", help="Texts for the data's top-1 (wordnet, text:FILE); 'none' to skip."),
    length: int = typer.Option(8, min=1, help="Free token positions between [CLS] and [SEP]."),
    steps: int = typer.Option(200, min=1), restarts: int = typer.Option(2, min=1),
    lr: float = typer.Option(0.1, help="Adam learning rate."),
    norm: str = typer.Option("sphere", help="sphere (||x|| = rho) or ball (||x|| <= rho), per position."),
    pooling: str = typer.Option("mean", help="mean (over the free positions) or token (at --position)."),
    position: int = typer.Option(0, help="Free position read by --pooling token."),
    seed: int = typer.Option(0), batch_size: int = typer.Option(64, min=1),
    allow_pickle: bool = allow_pickle_option(), progress: bool = progress_option(),
) -> None:
    """Optimise input embeddings for units, decode them to the nearest tokens, report the gap."""
    from ..exceptions import ParameterError
    from ..text import text_maximize

    try:
        u: int | list[int] = int(units) if "," not in units else [int(v) for v in units.split(",") if v.strip()]
    except ValueError as err:
        raise ParameterError(f"--units must be a count or comma-separated integers; got {units!r}.") from err
    net = load_model_cli(model, None, allow_pickle)
    spec = None if data is None or data.lower() == "none" else data
    ds = load_data_cli(spec, net) if spec is not None else None
    with progress_bar(progress) as bar:
        res = text_maximize(net, layer, u, length=length, steps=steps, restarts=restarts, lr=lr, norm=norm,
                            pooling=pooling, position=position, seed=seed, data=ds, batch_size=batch_size,
                            progress=bar, data_spec=spec)
    res.save(out)
    for e in res.units:
        extra = f", data top-1 {e['data_top1']:.4g}" if e["data_top1"] is not None else ""
        console.print(f"unit {e['unit']}: embeddings {e['embedding_activation']:.4g}, real tokens "
                      f"{e['token_activation']:.4g}{extra}  [{' '.join(e['tokens'])}]", markup=False)
    console.print(f"wrote [bold]{out}[/]")
