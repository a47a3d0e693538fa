"""Speech and transfer results under the analysis contract: the folder written by the Python API and
by the CLI for the same call are identical apart from timestamps; results load back; figures are
Figures; progress takes tqdm."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from typer.testing import CliRunner

from layerscope.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_cli import write_wavs  # noqa: E402


def folder_files(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def assert_same_folder(a: Path, b: Path, only: list[str] | None = None) -> None:
    """Same files; result.json equal without ``created``; every other file byte-equal (PNGs: equal
    decoded pixels if the bytes differ)."""
    files = only or folder_files(a)
    assert files == (only or folder_files(b))
    for rel in files:
        fa, fb = a / rel, b / rel
        if rel.endswith("result.json"):
            da, db = json.loads(fa.read_text()), json.loads(fb.read_text())
            da.pop("created"), db.pop("created")
            assert da == db, rel
        elif fa.read_bytes() != fb.read_bytes():
            assert rel.endswith(".png"), rel
            pa, pb = (np.asarray(Image.open(io.BytesIO(f.read_bytes()))) for f in (fa, fb))
            np.testing.assert_array_equal(pa, pb, err_msg=rel)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny digit model and one speaker model on synthetic wavs (trained once for this file)."""
    from layerscope.data import load_dataset
    from layerscope.speech import FeatureConfig, train_acoustic_model

    tmp = tmp_path_factory.mktemp("speech")
    write_wavs(tmp / "wavs", {"anna": 500.0, "bert": 1300.0, "carl": 2900.0, "dora": 2100.0})
    audio = load_dataset(f"fsdd:{tmp / 'wavs'}")
    cfg = FeatureConfig(kind="fbank", n_mels=16, context=2)
    common = dict(features=cfg, arch="dnn:width=12,depth=2", epochs=1, data_spec=f"fsdd:{tmp / 'wavs'}")
    train_acoustic_model(audio, out_dir=tmp / "digit", **common)  # type: ignore[arg-type]
    train_acoustic_model(audio, out_dir=tmp / "spk", target="speaker", split="speaker",  # type: ignore[arg-type]
                         test_speakers=["carl", "dora"], **common)
    return {"digit": tmp / "digit", "spk": tmp / "spk", "tmp": tmp}


def cli(*argv: str) -> None:
    res = CliRunner().invoke(app, list(argv))
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_speech_analyze_api_equals_cli(runs: dict[str, Path], tmp_path: Path) -> None:
    from layerscope import SpeechAnalysis, analyze_speech_runs

    res = analyze_speech_runs([runs["digit"]], method="pca", n_frames=80)
    res.save(tmp_path / "api")
    cli("speech", "analyze", "-m", str(runs["digit"]), "--out", str(tmp_path / "cli"), "--method", "pca",
        "--n-frames", "80", "--no-progress")
    assert_same_folder(tmp_path / "api", tmp_path / "cli")
    figs = res.figures()
    assert list(figs) == ["trends", "model1_digit_projections"] and all(isinstance(f, Figure) for f in figs.values())
    assert [r["layer"] for r in res.metrics["table"]] == ["input", "relu1", "relu2"]
    assert len(repr(res)) < 200 and "<img" in res._repr_html_()
    back = SpeechAnalysis.load(tmp_path / "cli")
    assert back.metrics == json.loads(json.dumps(res.metrics)) and back.analyses is None
    # the loaded result redraws the trend figure from its table: the same picture
    back.save(tmp_path / "again")
    assert_same_folder(tmp_path / "api", tmp_path / "again", only=["trends.png"])


@pytest.mark.slow
def test_speech_embed_api_equals_cli_and_load_round_trip(runs: dict[str, Path], tmp_path: Path) -> None:
    from layerscope import SpeakerEmbeddings, embed_speech_run
    from layerscope.exceptions import DataError

    import tqdm

    res = embed_speech_run(runs["spk"], progress=tqdm.tqdm)  # tqdm through every loop, capture's included
    res.save(tmp_path / "api")
    cli("speech", "embed", "-m", str(runs["spk"]), "--out", str(tmp_path / "cli"), "--no-progress")
    assert_same_folder(tmp_path / "api", tmp_path / "cli")
    assert res.metrics["speakers"] == ["carl", "dora"] and res.study is not None
    back = SpeakerEmbeddings.load(tmp_path / "cli")
    back.save(tmp_path / "again")  # everything of this result is rebuilt from result.json
    assert_same_folder(tmp_path / "api", tmp_path / "again")
    with pytest.raises(DataError, match="not 'speech'"):
        from layerscope import SpeechAnalysis

        SpeechAnalysis.load(tmp_path / "cli")


@pytest.mark.slow
def test_speech_topk_api_equals_cli(runs: dict[str, Path], tmp_path: Path) -> None:
    from layerscope import speech_topk

    res = speech_topk(runs["digit"], layer="relu2", units=[0, 1], k=2)
    res.save(tmp_path / "api")
    cli("speech", "topk", "-m", str(runs["digit"]), "-l", "relu2", "--units", "0,1", "--k", "2",
        "--out", str(tmp_path / "cli"), "--no-progress")
    assert_same_folder(tmp_path / "api", tmp_path / "cli")
    assert sum(f.endswith(".wav") for f in folder_files(tmp_path / "api")) == 4


def test_progress_takes_tqdm_and_true(runs: dict[str, Path]) -> None:
    """``progress=tqdm`` (tqdm's own class, keyword protocol) and ``progress=True`` (tqdm.auto) work,
    and count what they say."""
    import tqdm

    from layerscope.data import load_dataset
    from layerscope.speech import load_acoustic_run

    run = load_acoustic_run(runs["digit"])
    audio = load_dataset(run.meta["data"])
    seen: list[tuple[int | None, str]] = []

    class Recording(tqdm.tqdm):  # type: ignore[type-arg]
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            seen.append((self.total, self.desc))

    a = run.extractor.transform(audio, np.arange(6), progress=Recording)
    b = run.extractor.transform(audio, np.arange(6), progress=True)
    c = run.extractor.transform(audio, np.arange(6), progress=tqdm.tqdm)
    np.testing.assert_array_equal(a.x.numpy(), b.x.numpy())
    np.testing.assert_array_equal(a.x.numpy(), c.x.numpy())
    assert seen == [(6, "features (recordings)")]


def test_progress_rejects_a_non_callable() -> None:
    from layerscope._progress import resolve_progress
    from layerscope.exceptions import ParameterError

    with pytest.raises(ParameterError, match="tqdm-like callable"):
        resolve_progress("yes")  # type: ignore[arg-type]


def test_rich_tracker_takes_tqdm_keywords() -> None:
    from layerscope.cli._app import progress_bar

    with progress_bar(True) as bar:
        assert bar is not None
        assert list(bar(range(5), total=5, desc="layer fc1")) == list(range(5))
        assert list(bar(iter(range(3)), desc="epoch 1", leave=False)) == [0, 1, 2]
        tasks = bar.progress.tasks
    assert [(t.description, t.total, t.completed) for t in tasks] == [("layer fc1", 5, 5), ("epoch 1", None, 3)]


def test_transfer_report_api_equals_cli(tmp_path: Path) -> None:
    from test_transfer import _fake_store

    from layerscope import TransferResult
    from layerscope.transfer import TransferStore, build_result

    vals = {("baseA", 0, 0): 0.9, ("baseB", 0, 0): 0.8, ("baseA", 0, 1): 0.88, ("baseB", 0, 1): 0.82}
    for s in (0, 1):
        vals.update({("BnB", 1, s): 0.78, ("AnB", 1, s): 0.7 + 0.01 * s, ("AnB+", 1, s): 0.83, ("random", 1, s): 0.5})
    store = _fake_store(tmp_path, vals)
    res = build_result(TransferStore(store.directory))
    res.save(tmp_path / "api")
    cli("transfer", "--report", str(store.directory))
    outputs = ["result.json", "transfer.csv", "transfer.png"]
    assert folder_files(tmp_path / "api") == outputs
    assert_same_folder(tmp_path / "api", store.directory, only=outputs)
    back = TransferResult.load(tmp_path / "api")
    assert back.metrics == res.metrics and back.table == res.table and back.cells_done == res.cells_done == 12
    assert back.summary == res.summary and back.data == "mnist"
    assert isinstance(back.figures()["transfer"], Figure)
    assert repr(res).startswith("TransferResult(transfer, cells_done=12") and len(repr(res)) < 200
    back.save(tmp_path / "again")
    assert_same_folder(tmp_path / "api", tmp_path / "again")


def test_resolved_tracker_turns_positional_calls_into_keywords() -> None:
    """Code still calling ``track(iterable, total, desc)`` positionally gets tqdm's keywords right."""
    import tqdm

    from layerscope._progress import no_progress, resolve_progress

    got: list[tuple[int | None, str]] = []

    class Recording(tqdm.tqdm):  # type: ignore[type-arg]
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            got.append((self.total, self.desc))

    track = resolve_progress(Recording)
    assert list(track(range(3), 3, "layer fc1")) == [0, 1, 2]
    assert list(track(range(2), total=2, desc="epoch 1")) == [0, 1]
    assert got == [(3, "layer fc1"), (2, "epoch 1")]
    assert resolve_progress(None) is no_progress and resolve_progress(False) is no_progress
