"""``layerscope text-transfer``: Yosinski's transfer grid on a text encoder (:func:`layerscope.text.text_transfer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import allow_pickle_option, app, console, load_data_cli, load_model_cli, out_option, parse_list, progress_bar, progress_option


@app.command("text-transfer")
def text_transfer_cmd(
    model: str = typer.Option("hf:all-MiniLM-L6-v2", "--model", "-m", help="A BERT-like encoder: hf:FOLDER or hf:INSTALLED_NAME."),
    out: Path = out_option(),
    data: str = typer.Option("wordnet:train", help="Labelled training texts (a validation part is held out of them)."),
    test_data: str = typer.Option("wordnet:test", help="Labelled test texts, same classes."),
    task_b: Optional[str] = typer.Option(None, help="Task B groups: GROUP=CLASS,CLASS;GROUP=... (default living vs non-living)."),
    task_a: Optional[str] = typer.Option(None, help="Task A classes, comma-separated (default: the classes task B leaves)."),
    bases: str = typer.Option("pretrained,finetuned", help="Bases: pretrained (PnB) and/or finetuned (AnB)."),
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="Values of n (frozen encoder layers), comma-separated (default 0..L)."),
    seeds: str = typer.Option("0", help="Comma-separated seeds."),
    epochs: int = typer.Option(2, min=1), a_epochs: Optional[int] = typer.Option(None, min=1, help="Epochs on task A (default --epochs)."),
    lr: float = typer.Option(5e-5, help="AdamW learning rate of the encoder layers."),
    head_lr: float = typer.Option(1e-3, help="AdamW learning rate of the head."),
    batch_size: int = typer.Option(32, min=1), per_class: Optional[int] = typer.Option(None, help="At most this many training texts per class."),
    test_per_class: Optional[int] = typer.Option(None, help="At most this many test texts per class."),
    cache: bool = typer.Option(True, help="Compute the frozen layers once per (base, n) instead of every batch."),
    allow_pickle: bool = allow_pickle_option(), progress: bool = progress_option(),
) -> None:
    """Freeze the first n layers of a pretrained or task-A-finetuned encoder; train the rest on task B."""
    from ..exceptions import ParameterError
    from ..text import text_transfer
    from ..text.transfer import parse_task_b

    try:
        seed_list = [int(s) for s in parse_list(seeds) or []]
        ns = None if layers is None else [int(v) for v in parse_list(layers) or []]
    except ValueError as err:
        raise ParameterError(f"--seeds and --layers take comma-separated integers; got {seeds!r}, {layers!r}.") from err
    tb = None if task_b is None else parse_task_b(task_b)
    net = load_model_cli(model, None, allow_pickle)
    train, test = load_data_cli(data, net), load_data_cli(test_data, net)
    with progress_bar(progress) as bar:
        res = text_transfer(net, train, test, task_b=tb, task_a=parse_list(task_a), bases=parse_list(bases) or [],
                            layers=ns, seeds=seed_list, epochs=epochs, a_epochs=a_epochs, lr=lr, head_lr=head_lr,
                            batch_size=batch_size, per_class=per_class, test_per_class=test_per_class, cache=cache,
                            progress=bar, data_spec=data, test_data_spec=test_data)
    res.save(out)
    for s in res.summary:
        console.print(f"{s['condition']} n={s['n']}: test {s['mean']:.3f} (seeds {s['seeds']}, min {s['min']:.3f}, max {s['max']:.3f})")
    console.print(f"wrote [bold]{out}[/]")
