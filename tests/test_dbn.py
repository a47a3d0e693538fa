"""RBMs and DBNs (issue 15, part 1): hand-computed free energy, CD-1 gradient and conditionals on a
3 x 2 RBM; learning on real MNIST; to_mlp vs the up-pass; Erhan's views; errors; CLI."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from layerscope.dbn import DBN, RBM, DBNNet
from layerscope.exceptions import DataError, InputShapeError, ParameterError, WeightsError

W = [[1.0, -1.0], [0.5, 0.0], [-0.5, 2.0]]
B = [0.1, -0.2, 0.3]
C = [0.5, -1.0]


def sig(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


def softplus(a: float) -> float:
    return math.log1p(math.exp(a))


def hand_rbm(visible: str = "binary") -> RBM:
    rbm = RBM(3, 2, visible=visible)  # type: ignore[arg-type]
    with torch.no_grad():
        rbm.W.copy_(torch.tensor(W))
        rbm.vbias.copy_(torch.tensor(B))
        rbm.hbias.copy_(torch.tensor(C))
    return rbm


def energy(v: list[float], h: list[float], visible: str) -> float:
    vwh = sum(v[i] * W[i][j] * h[j] for i in range(3) for j in range(2))
    ch = sum(C[j] * h[j] for j in range(2))
    if visible == "binary":
        return -sum(B[i] * v[i] for i in range(3)) - ch - vwh
    return 0.5 * sum((v[i] - B[i]) ** 2 for i in range(3)) - ch - vwh


@pytest.mark.parametrize("visible", ["binary", "gaussian"])
def test_free_energy_by_hand_and_by_summing_hidden_states(visible: str) -> None:
    rbm = hand_rbm(visible)
    vs = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]] if visible == "binary" else [[0.3, -1.2, 2.0], [0.0, 0.5, -0.7]]
    got = rbm.free_energy(torch.tensor(vs)).tolist()
    for v, g in zip(vs, got):
        # closed form: -b.v - sum_j softplus(c_j + v.W_j)  (Gaussian: |v - b|^2 / 2 instead of -b.v)
        hidden = sum(softplus(C[j] + sum(v[i] * W[i][j] for i in range(3))) for j in range(2))
        first = -sum(B[i] * v[i] for i in range(3)) if visible == "binary" else 0.5 * sum((v[i] - B[i]) ** 2 for i in range(3))
        assert g == pytest.approx(first - hidden, abs=1e-5)
        # definition: F(v) = -log sum_h exp(-E(v, h)) over the 4 hidden states
        brute = -math.log(sum(math.exp(-energy(v, list(h), visible)) for h in itertools.product([0.0, 1.0], repeat=2)))
        assert g == pytest.approx(brute, abs=1e-5)
    # v = (1, 0, 1) by hand: -(0.1 + 0.3) - softplus(0.5 + 1 - 0.5) - softplus(-1 - 1 + 2)
    if visible == "binary":
        assert got[0] == pytest.approx(-0.4 - softplus(1.0) - softplus(0.0), abs=1e-6)


def test_conditionals_by_hand() -> None:
    rbm = hand_rbm()
    ph = rbm.hidden_probs(torch.tensor([[1.0, 0.0, 1.0]]))[0].tolist()
    assert ph == pytest.approx([sig(0.5 + 1.0 - 0.5), sig(-1.0 - 1.0 + 2.0)], abs=1e-6)  # [sig(1), 0.5]
    pv = rbm.visible_mean(torch.tensor([[1.0, 0.0]]))[0].tolist()
    assert pv == pytest.approx([sig(0.1 + 1.0), sig(-0.2 + 0.5), sig(0.3 - 0.5)], abs=1e-6)
    g = hand_rbm("gaussian")
    mean = g.visible_mean(torch.tensor([[1.0, 1.0]]))[0].tolist()  # b + W h, unit variance
    assert mean == pytest.approx([0.1 + 1.0 - 1.0, -0.2 + 0.5, 0.3 - 0.5 + 2.0], abs=1e-6)
    # samples: Bernoulli frequencies match p(h | v); Gaussian samples have mean b + W h and variance 1
    gen = torch.Generator().manual_seed(0)
    _, h = rbm.sample_h(torch.tensor([[1.0, 0.0, 1.0]]).repeat(20000, 1), gen)
    assert h.mean(0).tolist() == pytest.approx([sig(1.0), 0.5], abs=0.015)
    _, v = g.sample_v(torch.tensor([[1.0, 1.0]]).repeat(20000, 1), gen)
    assert v.mean(0).tolist() == pytest.approx(mean, abs=0.03)
    assert v.var(0).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=0.05)


def test_cd1_gradient_by_hand_with_injected_hidden_sample() -> None:
    rbm = hand_rbm()
    v0 = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    h0 = [[1.0, 0.0], [0.0, 1.0]]
    got = rbm.cd_statistics(torch.tensor(v0), k=1, h0=torch.tensor(h0))
    # by hand: ph0 = p(h | v0); v1 = E[v | h0] (visible means, the guide's choice); ph1 = p(h | v1)
    ph0 = [[sig(C[j] + sum(v[i] * W[i][j] for i in range(3))) for j in range(2)] for v in v0]
    v1 = [[sig(B[i] + sum(W[i][j] * h[j] for j in range(2))) for i in range(3)] for h in h0]
    ph1 = [[sig(C[j] + sum(v[i] * W[i][j] for i in range(3))) for j in range(2)] for v in v1]
    dW = [[sum(v0[n][i] * ph0[n][j] - v1[n][i] * ph1[n][j] for n in range(2)) / 2 for j in range(2)] for i in range(3)]
    db = [sum(v0[n][i] - v1[n][i] for n in range(2)) / 2 for i in range(3)]
    dc = [sum(ph0[n][j] - ph1[n][j] for n in range(2)) / 2 for j in range(2)]
    assert np.allclose(got["W"].numpy(), dW, atol=1e-6)
    assert np.allclose(got["vbias"].numpy(), db, atol=1e-6)
    assert np.allclose(got["hbias"].numpy(), dc, atol=1e-6)
    assert np.allclose(got["reconstruction"].numpy(), v1, atol=1e-6)


def test_one_training_step_is_sgd_on_the_cd_statistics() -> None:
    """fit() with lr, no momentum, no decay: new W = W + lr * (positive - negative), same samples."""
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    rbm = hand_rbm()
    expected = rbm.cd_statistics(x, 1, torch.Generator().manual_seed(7))  # batch order: randperm first
    rbm2 = hand_rbm()
    gen = torch.Generator().manual_seed(7)
    perm = torch.randperm(2, generator=gen)
    stats = rbm2.cd_statistics(x[perm], 1, gen)
    fitted = hand_rbm().fit(x, epochs=1, batch_size=2, lr=0.5, momentum=0.0, initial_momentum=0.0, weight_decay=0.0,
                            init_visible_bias=False, random_state=torch.Generator().manual_seed(7))
    assert torch.allclose(fitted.W, torch.tensor(W) + 0.5 * stats["W"], atol=1e-6)
    assert torch.allclose(fitted.hbias, torch.tensor(C) + 0.5 * stats["hbias"], atol=1e-6)
    assert expected["W"].shape == (3, 2)


def test_reconstruction_error_falls_on_real_mnist() -> None:
    from layerscope.data import load_mnist

    x = load_mnist(split="test").x[:400]
    for persistent in (False, True):
        rbm = RBM(784, 32, random_state=0).fit(x, epochs=4, batch_size=20, persistent=persistent,
                                               lr=0.1 if not persistent else 0.02, random_state=0)
        errs = [e["reconstruction_error"] for e in rbm.history_]
        # CD-1 lowers the reconstruction error at every epoch; PCD (not aimed at it, smaller rate) more slowly
        assert len(errs) == 4 and errs[-1] < (1.0 if persistent else 0.9) * errs[0], errs
        if not persistent:
            assert all(b < a for a, b in zip(errs, errs[1:])), errs
        # the model prefers real digits to the same pixels shuffled (lower free energy)
        shuffled = x.reshape(400, -1)[:, torch.randperm(784, generator=torch.Generator().manual_seed(0))]
        assert float(rbm.free_energy(x.reshape(400, -1)).mean()) < float(rbm.free_energy(shuffled).mean())
        assert all(math.isfinite(e["free_energy_gap"]) for e in rbm.history_)
    # a DBN: every layer's error falls; the data's free energy is below that of shuffled pixels
    dbn = DBN([784, 32, 16], random_state=0).fit(x, epochs=3, batch_size=40)
    for hist in dbn.history_:
        assert hist[-1]["reconstruction_error"] < hist[0]["reconstruction_error"]
    noise = x.reshape(400, -1)[:, torch.randperm(784, generator=torch.Generator().manual_seed(0))]
    r1 = dbn.rbms[0]
    assert float(r1.free_energy(x.reshape(400, -1)).mean()) < float(r1.free_energy(noise).mean())


def test_to_mlp_forward_equals_the_up_pass_and_is_a_copy() -> None:
    gen = torch.Generator().manual_seed(1)
    dbn = DBN([12, 5, 4, 3], visible="gaussian", random_state=0)
    with torch.no_grad():
        for r in dbn.rbms:
            r.W.normal_(0, 1, generator=gen)
            r.hbias.normal_(0, 1, generator=gen)
    x = torch.randn(7, 3, 4, generator=gen)
    ups = dbn.up(x)
    net = dbn.to_mlp(None, (3, 4))
    assert net.hidden_layers == ["sig1", "sig2", "sig3"]
    h = x.reshape(7, -1)
    for i, up in enumerate(ups, start=1):  # by hand: sigmoid(h W_i + c_i)
        h = torch.sigmoid(h @ dbn.rbms[i - 1].W + dbn.rbms[i - 1].hbias)
        assert torch.allclose(up, h, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(net(x), ups[-1], atol=1e-6)
        head = dbn.to_mlp(2, (3, 4), random_state=0)
        assert torch.allclose(head(x), head.out(ups[-1]), atol=1e-6)
        head.fc1.weight.add_(1.0)  # fine-tuning the copy leaves the DBN alone
    assert torch.allclose(dbn.up(x)[0], ups[0])
    # the random baseline has the same shape and PyTorch's default U(+-1/sqrt(fan_in)) range, seeded
    rnd = DBNNet((3, 4), [5, 4, 3], 2, random_state=0)
    assert [p.shape for p in rnd.parameters()] == [p.shape for p in head.parameters()]
    assert float(rnd.fc1.weight.detach().abs().max()) <= 1 / math.sqrt(12)
    assert torch.equal(rnd.fc2.weight, DBNNet((3, 4), [5, 4, 3], 2, random_state=0).fc2.weight)


def test_sampling_view_by_hand_and_linear_view() -> None:
    from layerscope.dbn.units import linear_views, sample_units

    dbn = DBN([3, 2], random_state=0)
    with torch.no_grad():
        dbn.rbms[0].W.copy_(torch.tensor([[10.0, 0.0], [-10.0, 0.0], [0.0, 0.0]]))
        dbn.rbms[0].vbias.zero_()
        dbn.rbms[0].hbias.zero_()
    img = sample_units(dbn, 1, [0], n_chains=16, n_gibbs=5, random_state=0)
    # unit 0 clamped on: E[v | h] = sigmoid(W h) = (sigmoid(10), sigmoid(-10), 0.5) whatever unit 1 does
    assert img.shape == (1, 3)
    assert img[0].tolist() == pytest.approx([sig(10.0), sig(-10.0), 0.5], abs=1e-6)
    assert linear_views(dbn, 1, [0, 1]).tolist() == [[10.0, -10.0, 0.0], [0.0, 0.0, 0.0]]
    two = DBN([3, 2, 2], random_state=0)
    lin = linear_views(two, 2, [1])
    assert np.allclose(lin, (two.rbms[0].W @ two.rbms[1].W[:, [1]]).T.numpy())


def test_dbn_units_leaves_the_dbn_unchanged_and_saves(tmp_path) -> None:
    from layerscope.dbn.results import DBNPretraining, DBNUnits
    from layerscope.dbn.units import dbn_units, pretrain_dbn

    x = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    pre = pretrain_dbn(x, [6, 5], epochs=2, batch_size=20)
    assert pre.metrics["falling"] == [True, True] or all(len(h) == 2 for h in pre.metrics["history"])
    before = {k: v.clone() for k, v in pre.dbn.state().items()}
    flags = [p.requires_grad for p in pre.dbn.parameters()]
    res = dbn_units(pre.dbn, layers=(1, 2), units=[0, 2], image_shape=(1, 4, 4), data=x, n_chains=4, n_gibbs=3,
                    steps=5, restarts=2)
    assert all(torch.equal(before[k], v) for k, v in pre.dbn.state().items())
    assert [p.requires_grad for p in pre.dbn.parameters()] == flags
    assert res.arrays["maximize_2"].shape == (2, 16) and res.arrays["sampling_1"].shape == (2, 16)
    # maximize's images lie on the sphere ||x|| = rho (Erhan's constraint)
    rho = res.metrics["layers"][0]["rho"]
    assert np.allclose(np.linalg.norm(res.arrays["maximize_1"], axis=1), rho, rtol=1e-4)
    res.save(tmp_path / "units")
    back = DBNUnits.load(tmp_path / "units")
    assert np.array_equal(back.arrays["linear_2"], res.arrays["linear_2"])
    assert (tmp_path / "units" / "units_layer2.png").is_file()
    pre.save(tmp_path / "pre")
    again = DBNPretraining.load(tmp_path / "pre")
    assert again.dbn is not None and all(torch.equal(again.dbn.state()[k], v) for k, v in before.items())


def test_bad_input_is_refused_with_one_line_errors() -> None:
    rbm = hand_rbm()
    cases = [
        (InputShapeError, lambda: rbm.hidden_probs(torch.zeros(2, 4)), "shape"),
        (InputShapeError, lambda: rbm.visible_mean(torch.zeros(3)), "shape"),
        (InputShapeError, lambda: rbm.fit(torch.zeros(5, 4), epochs=1), "visible units"),
        (DataError, lambda: rbm.fit(torch.full((5, 3), 2.0), epochs=1), r"\[0, 1\]"),
        (DataError, lambda: rbm.fit(torch.full((5, 3), float("nan")), epochs=1), "NaN"),
        (DataError, lambda: rbm.fit(torch.zeros(0, 3), epochs=1), "empty"),
        (ParameterError, lambda: rbm.fit(torch.zeros(5, 3), lr=-1.0), "lr"),
        (ParameterError, lambda: rbm.cd_statistics(torch.zeros(2, 3), k=0), "k must"),
        (ParameterError, lambda: RBM(0, 2), "n_visible"),
        (ParameterError, lambda: RBM(3, 2, visible="poisson"), "visible"),  # type: ignore[arg-type]
        (ParameterError, lambda: DBN([5]), "sizes"),
        (ParameterError, lambda: DBN([4, 3, 2]).fit(torch.rand(5, 4), epochs=[1, 2, 3]), "2 layers"),
        (InputShapeError, lambda: DBN([4, 3]).to_mlp(2, (3, 3)), "input_shape"),
        (WeightsError, lambda: DBN.from_state({"sizes": [4, 3]}, {"rbm1.W": torch.zeros(3, 4)}), "expected"),
    ]
    for err, call, match in cases:
        with pytest.raises(err, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    from layerscope.dbn.units import sample_units

    with pytest.raises(ParameterError, match="units of layer 1"):
        sample_units(DBN([4, 3]), 1, [3])
    with pytest.raises(ParameterError, match="layer must be 1..1"):
        sample_units(DBN([4, 3]), 2, [0])
    # a diverging RBM says so instead of returning NaN weights
    big = RBM(3, 2, visible="gaussian")
    with pytest.raises(ParameterError, match="diverged|too large"):
        big.fit(torch.randn(64, 3) * 1e20, epochs=1, lr=10.0, batch_size=8)


def test_cli_pretrain_then_sample(tmp_path) -> None:
    import numpy as np

    from layerscope.cli import main

    x = (np.random.default_rng(0).random((120, 1, 4, 4)) > 0.5).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(120, np.int64))
    for argv in (["dbn", "pretrain", "--data", f"npz:{tmp_path / 'd.npz'}", "--sizes", "6,5", "--epochs", "2",
                  "--batch-size", "20", "--out", str(tmp_path / "pre"), "--no-progress"],
                 ["dbn", "sample", "--model", str(tmp_path / "pre"), "--layers", "1,2", "--units", "0-2", "--chains", "2",
                  "--gibbs", "2", "--steps", "3", "--restarts", "2", "--out", str(tmp_path / "units")]):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 0
    from layerscope.dbn.results import DBNUnits

    res = DBNUnits.load(tmp_path / "units")
    assert res.parameters["units"] == {"1": [0, 1, 2], "2": [0, 1, 2]}
    assert res.parameters["image_shape"] == [1, 4, 4]
    for bad in (["dbn", "sample", "--model", str(tmp_path / "pre"), "--units", "0-99", "--out", str(tmp_path / "bad")],
                ["dbn", "sample", "--model", str(tmp_path / "pre"), "--units", "a-b", "--out", str(tmp_path / "bad")],
                ["dbn", "pretrain", "--data", f"npz:{tmp_path / 'd.npz'}", "--sizes", "", "--out", str(tmp_path / "bad")],
                ["dbn", "fsdd", "--data", f"npz:{tmp_path / 'd.npz'}", "--out", str(tmp_path / "bad")]):
        with pytest.raises(SystemExit) as ex:
            main(bad)
        assert ex.value.code == 2
    assert not (tmp_path / "bad" / "result.json").exists()
