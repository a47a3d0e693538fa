"""The seam between data and model: inputs, outputs, axes, reused modules, in-place ops.

Every expected value is a plain forward pass or a hand computation.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from layerscope.capture import capture, collect_activations, list_layers
from layerscope.exceptions import DataError, InputShapeError, LayerNotFoundError, ParameterError
from layerscope.seam import ReusedLayerError, iter_batches, parse_layer_spec, reduce_output


# ------------------------------------------------------------------------------------------
# in-place operations after the recorded layer
# ------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """A torchvision-style basic block: in-place ReLU on the conv output and ``out += identity``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += x
        return torch.relu_(out)


def test_inplace_ops_do_not_change_recorded_outputs() -> None:
    torch.manual_seed(1)
    m = ResBlock().eval()
    x = torch.randn(5, 2, 6, 6)
    with torch.no_grad():
        conv1 = m.conv1(x)
        bn2 = m.bn2(m.conv2(torch.relu(conv1)))
    assert (conv1 < 0).any() and (bn2 < 0).any()  # the in-place ops would change them
    with capture(m, ["conv1", "bn2"]) as cap:
        cap.run(x)
        assert torch.equal(cap["conv1"], conv1)
        assert torch.equal(cap["bn2"], bn2)
    assert cap.copied == {"conv1", "bn2"}
    acts = collect_activations(m, x, ["conv1", "bn2"], batch_size=2)
    # batches of 2 vs one batch of 5: equal up to float32 summation order
    np.testing.assert_allclose(acts["conv1"], conv1.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(acts["bn2"], bn2.numpy(), rtol=0, atol=1e-6)
    assert (acts["conv1"] < -0.01).any()  # pre-ReLU values kept
    # collect_activations copies each output inside the hook, before the in-place ReLU runs: no
    # output is watched, so no pass is run twice and nothing is listed as copied
    assert "copied_in_place" not in acts.meta


def test_no_copy_without_inplace_ops() -> None:
    m = nn.Sequential(OrderedDict(fc=nn.Linear(3, 4), act=nn.ReLU(), out=nn.Linear(4, 2)))
    with capture(m, ["fc", "act"]) as cap:
        cap.run(torch.randn(4, 3))
    assert cap.copied == set()


# ------------------------------------------------------------------------------------------
# reused modules
# ------------------------------------------------------------------------------------------


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.block(x)))


def test_reused_module_needs_a_call_index_and_gives_the_same_numbers_in_every_path() -> None:
    torch.manual_seed(0)
    m = Twice().eval()
    x = torch.randn(7, 3)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1])
    with torch.no_grad():
        first = m.block(x)
        second = m.block(first)
    with pytest.raises(ReusedLayerError, match=r"block#0.*block#1"):
        collect_activations(m, (x, y), ["block"])
    a = collect_activations(m, (x, y), ["block#1"], batch_size=3)
    b = collect_activations(m, (x, y), ["block#1", "head"], batch_size=3, predictions=True)
    c = collect_activations(m, (x, y), ["block#0"], batch_size=3)
    np.testing.assert_allclose(a["block#1"], second.numpy(), atol=1e-6)
    np.testing.assert_array_equal(a["block#1"], b["block#1"])
    np.testing.assert_allclose(c["block#0"], first.numpy(), atol=1e-6)
    rows = {r.name: r for r in list_layers(m, x)}
    assert rows["block"].calls == 2 and rows["block"].reused and not rows["head"].reused
    with pytest.raises(ParameterError, match="runs 2 time"):
        collect_activations(m, (x, y), ["block#2"])


# ------------------------------------------------------------------------------------------
# axes
# ------------------------------------------------------------------------------------------


def test_sequence_mean_is_over_tokens_masked_never_over_features() -> None:
    t = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    got = reduce_output(t, "mean", "sequence", mask)
    want = torch.stack([t[0, :2].mean(0), t[1].mean(0)])
    assert got.shape == (2, 4) and torch.equal(got, want)
    assert torch.equal(reduce_output(t, "first", "sequence", mask), t[:, 0])
    assert torch.equal(reduce_output(t, "last", "sequence", mask), torch.stack([t[0, 1], t[1, 2]]))
    assert torch.equal(reduce_output(t, "max", "sequence", mask), torch.stack([t[0, 1], t[1, 2]]))
    with pytest.raises(ParameterError, match="cannot tell"):
        reduce_output(t, "mean", "unknown", None, "blk")


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 4)
        self.block = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.mix = nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.mix(self.block(self.emb(input_ids)))


def test_token_model_dict_items_and_masked_mean() -> None:
    torch.manual_seed(0)
    m = Tokens().eval()
    ids = torch.randint(1, 20, (6, 5))
    mask = torch.ones(6, 5, dtype=torch.long)
    mask[0, 3:] = 0
    mask[4, 1:] = 0
    y = torch.tensor([0, 1, 2, 0, 1, 2])

    class Dicts(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "attention_mask": mask[i], "label": y[i]}

    acts = collect_activations(m, Dicts(), ["block", "mix", "emb"], reduce="mean", batch_size=4)
    with torch.no_grad():
        h = m.block(m.emb(ids))
    want = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    np.testing.assert_allclose(acts["block"], want.numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["mix"], want.numpy(), atol=1e-6)  # Identity: layout from the mask
    assert acts["emb"].shape == (6, 4)
    assert acts.labels.tolist() == y.tolist()
    assert acts.meta["layouts"] == {"block": "sequence", "mix": "sequence", "emb": "sequence"}
    # the same through a TensorDataset (ids, mask, y): the last element is the labels, not the mask
    td = TensorDataset(ids, mask, y)
    b = next(iter(iter_batches(td, 6, model=m, adapter=lambda bt: ((), {"input_ids": bt[0], "attention_mask": bt[1]}, bt[2]))))
    assert torch.equal(b.labels, y) and b.mask is not None
    rows = {r.name: r for r in list_layers(m, {"input_ids": ids[:2], "attention_mask": mask[:2]})}
    assert rows["block"].output_shape == (5, 4)


def test_conv1d_means_over_length_and_unknown_layout_is_refused() -> None:
    conv = nn.Sequential(OrderedDict(c=nn.Conv1d(2, 3, 1), act=nn.ReLU()))
    x = torch.randn(4, 2, 7)
    acts = collect_activations(conv, x, ["c"], reduce="mean")
    with torch.no_grad():
        want = conv.c(x).mean(2)
    np.testing.assert_allclose(acts["c"], want.numpy(), atol=1e-6)
    with pytest.raises(ParameterError, match="cannot tell"):
        collect_activations(conv, x, ["act"], reduce="mean")
    ok = collect_activations(conv, x, ["act"], reduce="mean", layouts={"act": "spatial"})
    np.testing.assert_allclose(ok["act"], torch.relu(conv.c(x)).mean(2).detach().numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------
# recurrent layers and dict outputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_outputs_batch_first_and_state(cell: str) -> None:
    torch.manual_seed(0)
    rnn = (nn.GRU if cell == "gru" else nn.LSTM)(3, 5, num_layers=2)  # batch_first=False
    m = nn.Sequential(OrderedDict(rnn=rnn)).eval()
    x = torch.randn(4, 6, 3)  # (T=4, N=6, D=3): time first, as the module expects
    with torch.no_grad():
        seq, state = rnn(x)
    h = state[0] if cell == "lstm" else state
    with capture(m, ["rnn", "rnn:h_n"]) as cap:
        cap.run(x)
    # the batch is axis 1 of the input; capture stores batch-first, checked against the plain pass
    assert torch.equal(cap["rnn"], seq.transpose(0, 1))
    assert torch.equal(cap["rnn:h_n"], h.transpose(0, 1))
    if cell == "lstm":
        with capture(m, ["rnn:c_n"]) as cap:
            cap.run(x)
        assert torch.equal(cap["rnn:c_n"], state[1].transpose(0, 1))
    with pytest.raises(LayerNotFoundError, match="no 'bogus'"):
        with capture(m, ["rnn:bogus"]) as cap:
            cap.run(x)


def test_batch_first_gru_mean_over_time() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(3, 4, batch_first=True)
    m = nn.Sequential(OrderedDict(gru=gru)).eval()
    x = torch.randn(5, 7, 3)
    acts = collect_activations(m, x, ["gru", "gru:h_n"], reduce="mean")
    with torch.no_grad():
        seq, h = gru(x)
    np.testing.assert_allclose(acts["gru"], seq.mean(1).numpy(), atol=1e-6)  # over time, not over units
    np.testing.assert_allclose(acts["gru:h_n"], h[-1].numpy(), atol=1e-6)  # one layer: (N, 1, H) -> mean = h


class DictOut(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_ids": x.long(), "sentence_embedding": x * 2}


def test_dict_outputs_are_selected_by_key_never_guessed() -> None:
    m = nn.Sequential(OrderedDict(pool=DictOut()))
    x = torch.randn(3, 4)
    with pytest.raises(LayerNotFoundError, match="sentence_embedding"):
        with capture(m, ["pool"]) as cap:
            cap.run(x)
    for spec in ("pool:sentence_embedding", "pool.sentence_embedding"):
        with capture(m, [spec]) as cap:
            cap.run(x)
        assert torch.equal(cap[spec], x * 2)
    assert parse_layer_spec(m, "pool.sentence_embedding").module == "pool"
    with pytest.raises(LayerNotFoundError, match="did you mean|Did you mean"):
        parse_layer_spec(m, "pol")


def test_output_without_batch_first_axis_is_refused() -> None:
    class Transposed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.t()

    m = nn.Sequential(OrderedDict(t=Transposed()))
    with pytest.raises(InputShapeError, match="batch on axis 0"):
        collect_activations(m, torch.randn(3, 5), ["t"])


# ------------------------------------------------------------------------------------------
# data kinds
# ------------------------------------------------------------------------------------------


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(fc=nn.Linear(4, 3), act=nn.ReLU(), out=nn.Linear(3, 2))).eval()


class Stream(IterableDataset):  # type: ignore[type-arg]
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(len(self.x)):
            yield self.x[i], self.y[i]


def test_every_data_kind_gives_the_plain_forward() -> None:
    m = _mlp()
    x = torch.randn(11, 4)
    y = torch.tensor([0, 1] * 5 + [1])
    with torch.no_grad():
        want = m.fc(x).numpy()
    kinds = {
        "tensor": x,
        "array": x.numpy(),
        "tuple": (x.numpy(), y.numpy()),
        "tensordataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=4),
        "iterable": Stream(x, y),
        "list-dataset": [(x[i], int(y[i])) for i in range(11)],
    }
    for kind, data in kinds.items():
        acts = collect_activations(m, data, ["fc"], batch_size=3, predictions=True)
        np.testing.assert_allclose(acts["fc"], want, atol=1e-6, err_msg=kind)
        assert acts.sample_ids.tolist() == list(range(11)), kind
        if kind in ("tensor", "array"):
            assert (acts.labels == -1).all() and acts.predictions is not None
        else:
            assert acts.labels.tolist() == y.tolist(), kind


def test_two_input_model_and_indices() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(3, 2)

        def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return self.a(u) + self.b(v)

    m = Two().eval()
    u, v, y = torch.randn(6, 2), torch.randn(6, 3), torch.arange(6) % 2
    acts = collect_activations(m, TensorDataset(u, v, y), ["b"], indices=[5, 0, 2])
    np.testing.assert_allclose(acts["b"], m.b(v[[5, 0, 2]]).detach().numpy(), atol=1e-6)
    assert acts.labels.tolist() == [1, 0, 0] and acts.sample_ids.tolist() == [5, 0, 2]
    with pytest.raises(ParameterError, match="rows in"):
        collect_activations(m, TensorDataset(u, v, y), ["b"], indices=[6])
    with pytest.raises(ParameterError, match="rows in"):
        collect_activations(m, TensorDataset(u, v, y), ["b"], indices=[-1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_model_dtypes(dtype: torch.dtype) -> None:
    m = _mlp().to(dtype)
    x = torch.randn(5, 4)  # float32 data
    acts = collect_activations(m, x, ["fc"])
    with torch.no_grad():
        want = m.fc(x.to(dtype)).float().numpy()
    assert acts["fc"].dtype == np.float32
    np.testing.assert_allclose(acts["fc"], want, rtol=1e-6, atol=1e-6)


def test_predictions_only_for_classifiers_of_these_labels() -> None:
    m = nn.Sequential(OrderedDict(fc=nn.Linear(4, 16))).eval()  # an embedding model
    ds = TensorDataset(torch.randn(8, 4), torch.arange(8) % 3)
    ds.classes = ["a", "b", "c"]  # type: ignore[attr-defined]
    acts = collect_activations(m, ds, ["fc"], predictions=True)
    assert acts.predictions is None and "16 columns" in acts.meta["predictions"]


def test_static_batch_is_padded_and_trimmed() -> None:
    m = _mlp()
    seen: list[int] = []
    m.fc.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].shape[0]))
    m.layerscope_static_batch = 4  # type: ignore[assignment]
    x = torch.randn(10, 4)
    acts = collect_activations(m, x, ["fc"], batch_size=256, predictions=True)
    assert set(seen) == {4}
    np.testing.assert_allclose(acts["fc"], m.fc(x).detach().numpy(), atol=1e-6)
    assert len(acts) == 10 and acts.predictions is not None and len(acts.predictions) == 10


def test_capture_and_list_layers_run_in_eval_and_restore_the_mode() -> None:
    m = nn.Sequential(OrderedDict(fc=nn.Linear(3, 3), bn=nn.BatchNorm1d(3), drop=nn.Dropout(0.5)))
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(8, 3)
    with capture(m, ["drop"]) as cap:
        cap.run(x)
        assert not m.training
    list_layers(m, x)
    assert m.training and all(mod.training for mod in m.modules())
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics unchanged
    with torch.no_grad():
        m.eval()
        want = m.bn(m.fc(x))
    assert torch.equal(cap["drop"], want)  # dropout off


def test_bad_batch_and_adapter_errors() -> None:
    with pytest.raises(ParameterError, match="batch_size"):
        next(iter_batches(torch.zeros(3, 2), 0))
    with pytest.raises(DataError, match="adapter"):
        next(iter_batches([object(), object()], 2))
    with pytest.raises(DataError, match="one row per sample"):
        next(iter_batches((np.zeros((3, 2)), np.zeros(4)), 2))


def test_bert_encoder_masked_mean_and_cls_equal_a_hand_pooled_reference() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    m = transformers.BertModel(cfg)
    m.train()  # capture must switch dropout off and restore the flag
    ids = torch.randint(1, 50, (5, 7))
    mask = torch.ones(5, 7, dtype=torch.long)
    mask[0, 4:] = 0
    mask[3, 2:] = 0
    y = torch.tensor([0, 1, 0, 1, 1])
    items = [{"input_ids": ids[i], "attention_mask": mask[i], "labels": y[i]} for i in range(5)]
    layers = ["encoder.layer.0", "encoder.layer.1"]
    mean = collect_activations(m, items, layers, reduce="mean", batch_size=2)
    cls = collect_activations(m, items, layers, reduce="cls", batch_size=2)
    assert m.training
    m.eval()
    with torch.no_grad():
        hs = m(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for i, name in enumerate(layers):
        h = hs[i + 1]
        want = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        np.testing.assert_allclose(mean[name], want.numpy(), atol=1e-5)
        np.testing.assert_allclose(cls[name], h[:, 0].numpy(), atol=1e-5)
    assert mean.labels.tolist() == y.tolist()
    assert mean.meta["layouts"][layers[0]] == "sequence"
    # position embeddings are shared by the batch (batch axis of size 1): refused, not mis-recorded
    with pytest.raises(InputShapeError, match="batch on axis 0"):
        collect_activations(m, items, ["embeddings.position_embeddings"], batch_size=2)


def test_dtype_and_signature_errors_say_what_is_wrong() -> None:
    m = nn.Sequential(OrderedDict(emb=nn.Embedding(10, 3)))
    with pytest.raises(DataError, match="integer"):
        collect_activations(m, torch.zeros(4, 5), ["emb"])  # float token ids
    one = _mlp()
    two_inputs = TensorDataset(torch.randn(4, 4), torch.randn(4, 4))  # no labels: two positional inputs
    with pytest.raises(DataError, match="adapter"):
        collect_activations(one, two_inputs, ["fc"])


def test_static_batch_programs_take_any_number_of_rows_in_direct_calls() -> None:
    from layerscope.seam import run_model

    m = _mlp()
    x = torch.randn(7, 4)
    with torch.no_grad():
        want_out, want_fc = m(x), m.fc(x)
    seen: list[int] = []
    m.fc.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].shape[0]))
    m.layerscope_static_batch = 3  # type: ignore[assignment]
    with torch.no_grad():
        out = run_model(m, x)
    assert set(seen) == {3} and torch.allclose(out, want_out, atol=1e-6) and out.shape[0] == 7
    for n in (1, 3, 7):
        with capture(m, ["fc"]) as cap:
            got = cap.run(x[:n])
        assert torch.allclose(cap["fc"], want_fc[:n], atol=1e-6) and torch.allclose(got, want_out[:n], atol=1e-6)
    assert set(seen) == {3}


def test_occlusion_refuses_a_model_that_does_not_score_the_datas_classes() -> None:
    from layerscope.convnets import occlusion_maps

    torch.manual_seed(0)
    embed = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), flat=nn.Flatten(), fc=nn.Linear(2 * 6 * 6, 16))).eval()
    ds = TensorDataset(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]))
    ds.classes = ["a", "b", "c"]  # type: ignore[attr-defined]
    with pytest.raises(InputShapeError, match="16 columns but the data has 3 classes"):
        occlusion_maps(embed, ds, [0], size=3, stride=2)


def test_unpooled_token_states_of_varying_length_are_refused_not_crashed() -> None:
    m = Tokens().eval()

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:  # pads to the longest text of the batch
        t = max(len(s) for s in texts)
        ids = torch.tensor([[1 + (ord(c) % 18) for c in s] + [0] * (t - len(s)) for s in texts])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}

    m.layerscope_tokenize = tokenize  # type: ignore[assignment]
    texts = [("ab", 0), ("abc", 1), ("abcdef", 0), ("a", 1)]
    with pytest.raises(InputShapeError, match="no common shape"):
        collect_activations(m, texts, ["block"], batch_size=2)
    pooled = collect_activations(m, texts, ["block"], batch_size=2, reduce="mean")
    assert pooled["block"].shape == (4, 4)


@pytest.mark.parametrize("extra,word", [
    (["--layout", "foo"], "--layout takes NAME="),
    (["--layout", "relu1=diagonal"], "--layout takes NAME="),
    (["--reduce", "bogus"], "reduce must be"),
    (["-l", "relu1#x"], "No layer named 'relu1#x'"),
    (["-l", "relu1[zz]"], "No layer named 'relu1[zz]'"),
    (["-l", "relu1:nokey"], "no 'nokey'"),
])
def test_layer_spec_and_axis_options_are_one_line_errors(
    extra: list[str], word: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layerscope.cli import main

    out = tmp_path / "out"
    args = ["capture", "-m", "mnist-mlp", "--data", "mnist:test", "--limit", "10", "--no-progress", "-o", str(out)]
    if "-l" not in extra:
        args += ["-l", "relu1"]
    with pytest.raises(SystemExit) as ex:
        main(args + extra)
    err = capsys.readouterr().err
    assert ex.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert word in err and not out.exists()
