"""Progress bars say which layer / epoch / step they are on and move while the work runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

import layerscope as ls
from layerscope._progress import ticks
from layerscope.projection import project
from layerscope.training import train


class Recorder:
    """A tqdm-like tracker that records each bar (desc, total) and each item pulled, with whether
    the pull happened while ``inside`` (a function name) was running."""

    def __init__(self, inside: str = "") -> None:
        self.inside = inside
        self.bars: list[dict[str, Any]] = []

    @staticmethod
    def _running(name: str) -> bool:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == name:
                return True
            frame = frame.f_back  # type: ignore[assignment]
        return False

    def __call__(self, iterable: Iterable[Any], total: int | None = None, desc: str | None = None, **_: Any) -> Iterator[Any]:
        bar: dict[str, Any] = {"desc": desc, "total": total, "pulls": 0, "inside": 0}
        self.bars.append(bar)

        def gen() -> Iterator[Any]:
            for item in iterable:
                bar["pulls"] += 1
                if self.inside and self._running(self.inside):
                    bar["inside"] += 1
                yield item

        return gen()


def test_ticks_advance_one_per_call_and_finish_the_bar() -> None:
    rec = Recorder()
    with ticks(rec, total=5, desc="work") as tick:
        assert rec.bars[0]["pulls"] == 1  # opened at 0
        tick()
        tick()
        assert rec.bars[0]["pulls"] == 3
    assert rec.bars[0] == {"desc": "work", "total": 5, "pulls": 5, "inside": 0}  # the rest on exit
    with ticks(rec, total=2, desc="more") as tick:
        for _ in range(6):
            tick()  # beyond total: ignored
    assert rec.bars[1]["pulls"] == 2
    with pytest.raises(RuntimeError):
        with ticks(rec, total=3, desc="fails"):
            raise RuntimeError("boom")
    assert rec.bars[2]["pulls"] == 3  # closed also on an error


def test_tsne_bar_names_the_layer_ticks_during_optimisation_and_changes_nothing() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 4])
    y = np.repeat([0, 1], 40)
    kw: dict[str, Any] = dict(perplexity=5, n_iter=60, early_exaggeration_iter=30, layer="fc1", checkpoint=2)
    rec = Recorder(inside="optimize")
    with_bar = project(X, y, "tsne", 0, progress=rec, **kw)
    plain = project(X, y, "tsne", 0, **kw)
    np.testing.assert_array_equal(with_bar.embedding, plain.embedding)  # the callback only counts
    assert len(rec.bars) == 1
    bar = rec.bars[0]
    assert bar["desc"] == "tsne fc1 @ epoch 2" and bar["total"] == 2 + 3  # ceil(30/25) + ceil(60/25)
    assert bar["pulls"] == 5
    assert bar["inside"] >= 3  # ticks from openTSNE's callback, while it optimises (not all at the end)


def test_training_ticks_per_batch_with_the_epoch_in_the_description(tmp_path: Path) -> None:
    data = ls.load_dataset("mnist:test").subset(np.arange(100))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    rec = Recorder()
    train(model, data, out_dir=tmp_path / "run", epochs=2, batch_size=32, progress=rec)
    assert [(b["desc"], b["total"], b["pulls"]) for b in rec.bars] == [
        ("train epoch 1/2", 4, 4), ("train epoch 2/2", 4, 4)]


def test_correspondence_ticks_per_part() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    rec = Recorder()
    ls.correspondence(model, torch.rand(3, 1, 12, 12), ["1"], n_random=2, progress=rec)
    assert len(rec.bars) == 1 and rec.bars[0]["desc"].startswith("correspondence: 4 parts x 3 masks")
    assert rec.bars[0]["pulls"] == rec.bars[0]["total"] == 4
