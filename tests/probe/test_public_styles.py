"""The probe engine against an independent per-input autograd oracle on discriminators written
the way public GAN code writes them (``tests/zoo.py``: mimicry / BigGAN-PyTorch / old
SpectralNorm-wrapper / DCGAN / CIFAR-ResNet styles, legacy torch spectral_norm, in-place
activations, eval-mode BatchNorm).

The oracle (``zoo.oracle_layer_grads``) is checked first: against closed-form gradients of a
dense ReLU net, against ordinary parameter autograd on the models without weight
reparametrisations, and against hand-computed used weights on the spectral-norm styles. Then
every quantity the engine reports per layer and per input (||dD/dW||, ||dD/dz||, ||h||,
sigma_R of the used weight) must equal the oracle's to rtol 1e-10, and the measured model facts
must describe each model correctly.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zoo
from torch import nn
from zoo import CHAIN, RESIDUAL, ZOO, oracle_layer_grads

RTOL = 1e-10
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def assert_layers_close(got, want, what: str, names, rtol: float = RTOL) -> None:
    """``|got - want| <= rtol |want| + atol`` per layer (atol = 1e-13 x the layer's largest
    entry, for exact zeros such as dead ReLU units); the message lists every failing layer with
    its worst input, both values and their ratio."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: engine shape {got.shape} != oracle {want.shape}"
    lines = []
    for t in range(want.shape[0]):
        atol = 1e-13 * float(np.max(np.abs(want[t]))) if want[t].size else 0.0
        err = np.abs(got[t] - want[t])
        excess = np.where(np.isfinite(err), err - (atol + rtol * np.abs(want[t])), np.inf)
        b = int(np.argmax(excess))
        if excess[b] > 0:
            g, w = float(got[t, b]), float(want[t, b])
            lines.append(f"layer {t} ({names[t]}) input {b}: engine {g:.6g} oracle {w:.6g} "
                         f"ratio {g / w if w else math.inf:.6g}")
    assert not lines, f"{what} (rtol {rtol:.0e}): " + "; ".join(lines)


# ------------------------------------------------------------------------------------------------
# The oracle, checked on its own
# ------------------------------------------------------------------------------------------------

def test_oracle_dense_closed_form():
    """D = w3 . relu(W2 relu(W1 x)): delta_3 = 1, delta_2 = w3 * 1[z2 > 0],
    delta_1 = W2^T delta_2 * 1[z1 > 0], ||dD/dW_t|| = ||delta_t|| ||h_t|| (rank one)."""
    torch.manual_seed(3)
    W1, W2, w3 = (torch.randn(7, 5, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64),
                  torch.randn(1, 6, dtype=torch.float64))
    model = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 6, bias=False),
                          nn.ReLU(), nn.Linear(6, 1, bias=False)).double()
    with torch.no_grad():
        for lin, W in zip(model[::2], (W1, W2, w3)):
            lin.weight.copy_(W)
    x = torch.randn(6, 5, dtype=torch.float64)
    o = oracle_layer_grads(model, x)
    assert o["kinds"] == ["linear"] * 3 and o["weight_shapes"] == [(7, 5), (6, 7), (1, 6)]
    assert o["names"] == ["0", "2", "4"] and o["biases"] == [False] * 3
    wg, dl, hn = np.zeros((3, 6)), np.zeros((3, 6)), np.zeros((3, 6))
    for b in range(6):
        h1 = x[b]
        z1 = W1 @ h1
        h2 = torch.relu(z1)
        z2 = W2 @ h2
        h3 = torch.relu(z2)
        d3 = torch.ones(1, dtype=torch.float64)
        d2 = w3[0] * (z2 > 0)
        d1 = (W2.T @ d2) * (z1 > 0)
        for t, (d, h) in enumerate([(d1, h1), (d2, h2), (d3, h3)]):
            dl[t, b], hn[t, b] = d.norm(), h.norm()
            wg[t, b] = torch.outer(d, h).norm()
    np.testing.assert_allclose(o["delta"], dl, rtol=1e-13, atol=0)
    np.testing.assert_allclose(o["h_norm"], hn, rtol=1e-13, atol=0)
    np.testing.assert_allclose(o["weight_grad"], wg, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(o["weight_grad"], o["delta"] * o["h_norm"], rtol=1e-13, atol=0)
    for w, W in zip(o["weights"], (W1, W2, w3)):
        assert torch.equal(w, W)


def test_oracle_dense_rank_one_with_tanh_and_bias():
    """Biases present (and reported), tanh: still ||dD/dW|| = ||delta|| ||h|| per dense layer,
    and the last layer's delta is 1 (identity output)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                          nn.Linear(5, 1, bias=False)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    o = oracle_layer_grads(model, x)
    np.testing.assert_allclose(o["weight_grad"], o["delta"] * o["h_norm"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(o["delta"][-1], 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(o["h_norm"][0], x.norm(dim=1).numpy(), rtol=1e-14, atol=0)
    assert o["biases"] == [True, True, False]


@pytest.mark.parametrize("name", ["residual_mlp", "dcgan_inplace", "dcgan_batchnorm",
                                  "cifar_resnet"])
def test_oracle_equals_parameter_autograd(name):
    """Where every used weight *is* a module parameter, dD/dW (oracle, via w + E) must equal the
    ordinary per-input parameter gradient, and ||h|| the norm a forward pre-hook sees."""
    model, x = ZOO[name]()
    o = oracle_layer_grads(model, x)
    layers = [dict(model.named_modules())[n] for n in o["names"]]     # forward order
    assert all(isinstance(m, (nn.Linear, nn.Conv2d)) for m in layers)
    assert len(layers) == sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    wg, hn = np.zeros((len(layers), len(x))), np.zeros((len(layers), len(x)))
    for b in range(len(x)):
        ins = {}
        hooks = [m.register_forward_pre_hook(
            lambda m, a, t=t, ins=ins: ins.__setitem__(t, float(a[0].detach().norm())))
            for t, m in enumerate(layers)]
        try:
            score = model(x[b:b + 1]).reshape(())
            gs = torch.autograd.grad(score, [m.weight for m in layers])
        finally:
            for h in hooks:
                h.remove()
        for t in range(len(layers)):
            wg[t, b], hn[t, b] = float(gs[t].norm()), ins[t]
    np.testing.assert_allclose(o["weight_grad"], wg, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(o["h_norm"], hn, rtol=1e-13, atol=0)
    for w, m in zip(o["weights"], layers):
        assert torch.equal(w, m.weight.detach())


def test_oracle_used_weights_of_spectral_norm_styles():
    """The recorded weight is the normalised one each style computes: legacy hook
    weight_orig / (u^T W v); BigGAN weight / (v W^T u') from the u buffer; wrapper weight_bar /
    (u^T W v) at the converged u, v."""
    model, x = zoo.mimicry_sngan_resnet()
    o = oracle_layer_grads(model, x)
    sn = [m for m in model.modules() if hasattr(m, "weight_orig")]
    assert len(sn) == len(o["weights"]) == 11
    for w, m in zip(o["weights"], sn):
        W = m.weight_orig.detach().reshape(m.weight_orig.shape[0], -1)
        sigma = torch.dot(m.weight_u, W @ m.weight_v)
        torch.testing.assert_close(w, m.weight_orig.detach() / sigma, rtol=1e-14, atol=0)

    model, x = zoo.biggan_style()
    o = oracle_layer_grads(model, x)
    sn = [m for m in model.modules() if hasattr(m, "u0")]
    assert len(sn) == len(o["weights"]) == 6
    for w, m in zip(o["weights"], sn):
        W = m.weight.detach().reshape(m.weight.shape[0], -1)
        v = F.normalize(m.u0 @ W)
        u = F.normalize(v @ W.T)
        torch.testing.assert_close(w, m.weight.detach() / (v @ W.T @ u.T).squeeze(),
                                   rtol=1e-14, atol=0)
        sig_raw = torch.linalg.matrix_norm(W, 2)
        assert abs(float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2)) - 1) < 0.05
        assert abs(float(sig_raw) - 1) > 0.05        # normalisation is visible

    model, x = zoo.sn_wrapper()
    o = oracle_layer_grads(model, x)
    sn = [m for m in model.modules() if isinstance(m, zoo.SpectralNorm)]
    assert len(sn) == len(o["weights"]) == 4
    for w, m in zip(o["weights"], sn):
        torch.testing.assert_close(w, m.module.weight.detach(), rtol=1e-13, atol=0)
        # 1 + O(1e-12), not exactly 1: the wrapper's l2normalize divides by (||v|| + 1e-12)
        np.testing.assert_allclose(float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2)),
                                   1.0, rtol=1e-10)


def test_oracle_restores_functional_even_on_error():
    lin, conv = F.linear, F.conv2d

    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 1, bias=False).double()

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        oracle_layer_grads(Boom(), torch.zeros(2, 3, dtype=torch.float64))
    assert F.linear is lin and F.conv2d is conv
    assert torch.nn.functional.linear is lin and torch.nn.functional.conv2d is conv
    m = Boom()
    assert not m.fc._forward_pre_hooks and not m.fc._forward_hooks


# ------------------------------------------------------------------------------------------------
# The zoo, checked on its own
# ------------------------------------------------------------------------------------------------

LAYERS = {"residual_mlp": 6, "mimicry_sngan_resnet": 11, "legacy_sn_cold": 11,
          "biggan_style": 6, "sn_wrapper": 4, "dcgan_inplace": 3, "dcgan_batchnorm": 4,
          "cifar_resnet": 6}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_is_eval_float64_deterministic(name):
    state = torch.random.get_rng_state()
    model, x = ZOO[name]()
    assert torch.equal(torch.random.get_rng_state(), state), "factory moved the global RNG"
    assert not any(m.training for m in model.modules())
    assert x.dtype == torch.float64 and x.shape[1:] == zoo.INPUT_SHAPES[name]
    assert 4 <= len(x) <= 6
    assert all(p.dtype == torch.float64 for p in model.parameters())
    with torch.no_grad():
        out = model(x)
        again = ZOO[name]()[0](x)
    assert out.shape in ((len(x),), (len(x), 1)) and torch.isfinite(out).all()
    assert torch.equal(out, again)
    assert len(oracle_layer_grads(model, x)["names"]) == LAYERS[name]


def test_mimicry_warm_up_moved_power_iteration():
    warm, _ = zoo.mimicry_sngan_resnet()
    cold, _ = zoo.legacy_sn_cold()
    wu = [m.weight_u for m in warm.modules() if hasattr(m, "weight_u")]
    cu = [m.weight_u for m in cold.modules() if hasattr(m, "weight_u")]
    assert len(wu) == len(cu) == 11
    # (the 1-row head's u is +-1 either way)
    assert all(not torch.equal(a, b) for a, b in zip(wu, cu) if a.numel() > 1)
    # after a training-mode power step u = normalize(W v) exactly; cold u is a random draw
    for m in (m for m in warm.modules() if hasattr(m, "weight_u")):
        W = m.weight_orig.detach().reshape(m.weight_orig.shape[0], -1)
        torch.testing.assert_close(m.weight_u, F.normalize(W @ m.weight_v, dim=0), rtol=1e-12,
                                   atol=1e-15)


def test_mimicry_shortcut_sees_rectified_input():
    """Mimicry's DBlock rectifies its input in place, so the 1x1 shortcut conv of block2 gets
    relu(x): the oracle's recorded ||h|| of block2.c_sc equals that of block2.c1."""
    model, x = zoo.mimicry_sngan_resnet()
    o = oracle_layer_grads(model, x)
    i, j = o["names"].index("block2.c1"), o["names"].index("block2.c_sc")
    np.testing.assert_allclose(o["h_norm"][j], o["h_norm"][i], rtol=1e-14)


# ------------------------------------------------------------------------------------------------
# The engine against the oracle
# ------------------------------------------------------------------------------------------------

_CACHE: dict[str, tuple] = {}


def _case(name):
    """(oracle result, engine result or the exception it raised), each from its own fresh
    instance of the (deterministic) zoo model."""
    if name not in _CACHE:
        model, x = ZOO[name]()
        o = oracle_layer_grads(model, x)
        try:
            from gradcheck.probe import ProbeOptions, probe

            model, x = ZOO[name]()
            res = probe(model, x, ProbeOptions(spectra=False))
        except Exception as e:  # noqa: BLE001 - reported by every test that needs it
            res = e
        _CACHE[name] = (o, res)
    o, res = _CACHE[name]
    if isinstance(res, Exception):
        raise AssertionError(f"{name}: probe raised {type(res).__name__}: {res}") from res
    return o, res


@pytest.mark.parametrize("name", list(ZOO))
def test_layers_match(name):
    o, res = _case(name)
    got = [(L.kind, tuple(L.weight_shape)) for L in res.layers]
    assert got == list(zip(o["kinds"], o["weight_shapes"])), f"{name}: {got} vs oracle " \
        f"{list(zip(o['names'], o['kinds'], o['weight_shapes']))}"


@pytest.mark.parametrize("what", ["weight_grad", "delta", "h_norm"])
@pytest.mark.parametrize("name", list(ZOO))
def test_grads_equal_oracle(name, what):
    o, res = _case(name)
    assert_layers_close(getattr(res.grads, what), o[what], f"{name} {what}", o["names"])


@pytest.mark.parametrize("name", list(ZOO))
def test_sigma_R_of_used_weight(name):
    o, res = _case(name)
    want = np.array([float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2))
                     for w in o["weights"]])
    got = np.array([float(n.sigma_R) for n in res.norms])
    assert_layers_close(got[:, None], want[:, None], f"{name} sigma_R", o["names"])


def test_biggan_sigma_is_the_normalised_one():
    """BigGAN-style layers normalise inside forward: sigma_R is the used (normalised) weight's,
    near 1 after the warm-up, and not the raw parameter's."""
    o, res = _case("biggan_style")
    model, _ = zoo.biggan_style()
    raw = [float(torch.linalg.matrix_norm(m.weight.detach().reshape(m.weight.shape[0], -1), 2))
           for m in model.modules() if hasattr(m, "u0")]
    got = np.array([float(n.sigma_R) for n in res.norms])
    want = np.array([float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2))
                     for w in o["weights"]])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert np.all(np.abs(got - 1) < 0.05) and np.all(np.abs(np.array(raw) - 1) > 0.05), (got, raw)


@pytest.mark.parametrize("name", list(ZOO))
def test_facts_biases(name):
    o, res = _case(name)
    assert tuple(bool(b) for b in res.facts.biases) == tuple(o["biases"])


@pytest.mark.parametrize("name", RESIDUAL)
def test_facts_residual_models_are_not_chains(name):
    _, res = _case(name)
    assert res.facts.chain is False and len(res.facts.skips) >= 1, res.facts.skips


@pytest.mark.parametrize("name", CHAIN)
def test_facts_chain_models_are_chains(name):
    _, res = _case(name)
    assert res.facts.chain is True and tuple(res.facts.skips) == (), res.facts.skips


def test_facts_residual_mlp_skip_spans():
    """Layers: 0 inp, 1 fc1.0, 2 fc2.0, 3 fc1.1, 4 fc2.1, 5 head; a skip goes around 1..2 and
    around 3..4."""
    _, res = _case("residual_mlp")
    assert sorted(tuple(s) for s in res.facts.skips) == [(1, 2), (3, 4)]


def test_facts_dcgan_inplace_activations():
    _, res = _case("dcgan_inplace")
    acts = [a for a in res.facts.activations if a.kind != "identity"]
    assert acts, res.facts.activations
    for a in acts:
        assert a.kind == "lrelu" and a.slope == pytest.approx(0.2, rel=1e-12) and a.inplace, a


def test_facts_sn_wrapper_activations():
    _, res = _case("sn_wrapper")
    acts = [a for a in res.facts.activations if a.kind != "identity"]
    assert acts, res.facts.activations
    for a in acts:
        assert a.kind == "lrelu" and a.slope == pytest.approx(0.2, rel=1e-12) and not a.inplace, a


@pytest.mark.parametrize("name", [n for n in ZOO if n != "dcgan_batchnorm"])
def test_facts_output_identity_and_supported(name):
    _, res = _case(name)
    assert res.facts.output == "identity" and res.facts.unsupported is None, \
        (res.facts.output, res.facts.unsupported)


def test_facts_batchnorm_unsupported():
    _, res = _case("dcgan_batchnorm")
    u = res.facts.unsupported
    assert u is not None and ("batchnorm" in u.lower() or "batch_norm" in u.lower()), u


def test_facts_legacy_sn_cold_warns():
    _, res = _case("legacy_sn_cold")
    assert any("spectral_norm" in w for w in res.facts.warnings), res.facts.warnings


# ------------------------------------------------------------------------------------------------
# End to end: gradcheck run --model tests.zoo:<factory>
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("factory, shape", [("residual_mlp_model", "6"),
                                            ("mimicry_sngan_resnet_model", "3,16,16")])
def test_cli_run_on_zoo_model(factory, shape, tmp_path, monkeypatch, capsys):
    from gradcheck.cli import main

    monkeypatch.chdir(REPO)            # --model modules are imported from the current directory
    out = tmp_path / "run"
    code = main(["run", "--model", f"tests.zoo:{factory}", "--input-shape", shape,
                 "--batch", "4", "--spectra-inputs", "1", "--no-plots", "--out", str(out),
                 "--quiet"])
    captured = capsys.readouterr()
    why = ""
    if code == 1:       # a claim violated: name it (a skip connection voids the chain bounds)
        import json

        import pandas as pd

        summary = json.loads((out / "summary.json").read_text())
        checks = pd.read_csv(out / "checks.csv")
        # holds is True/False/'' (read back as NaN): pick the rows that are False
        violated = checks.holds.astype(str) == "False"
        why = f"{summary.get('verdict')}; " + checks[violated].to_string()
    assert code == 0, why or (captured.err[-2000:] + captured.out[-2000:])
    assert (out / "layers.csv").exists()


@pytest.mark.parametrize("name", list(ZOO))
def test_operator_norms_equal_dense_oracle(name):
    """Every layer's ||W||_op (conv: on its actual input, stride, padding) equals the top
    singular value of the dense matrix of the operation, built from the oracle's used weight."""
    from gradcheck.reference import dense_conv_matrix

    o, res = _case(name)
    want = []
    for info, w in zip(res.layers, o["weights"]):
        if info.kind == "linear":
            M = w.double()
        else:
            conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=info.stride,
                             padding=info.padding, dilation=info.dilation, bias=False).double()
            with torch.no_grad():
                conv.weight.copy_(w)
            M = dense_conv_matrix(conv, info.input_shape)
        want.append(float(torch.linalg.matrix_norm(M.double(), 2)))
    got = np.array([n.sigma_op for n in res.norms])
    # Lanczos to 1e-10 relative (the engine's stated tolerance), exact SVD for dense layers
    assert_layers_close(got[:, None], np.array(want)[:, None], f"{name} sigma_op", o["names"],
                        rtol=1e-9)


def test_c11_bound_of_the_residual_mlp_by_hand():
    """C11's F and B for h = W0 x; h += W2 relu(W1 relu(h)) twice; head(relu(h)), written out by
    hand from the layers' operator norms s_0..s_5: F grows by (1 + s1 s2)(1 + s3 s4)."""
    from gradcheck.claims import Context, Setting
    from gradcheck.claims.c11_graph_bound import graph_bound

    _, res = _case("residual_mlp")
    s = [n.sigma_op for n in res.norms]
    a, b = 1 + s[1] * s[2], 1 + s[3] * s[4]
    F_in = [1.0, s[0], s[0] * s[1], s[0] * a, s[0] * a * s[3], s[0] * a * b]  # F(h_{t-1})
    B_out = [a * b * s[5], b * s[5] * s[2], b * s[5], s[5] * s[4], s[5], 1.0]  # B(z_t)
    want = np.array([f * bb for f, bb in zip(F_in, B_out)])
    got = graph_bound(Context(res, Setting(None)))
    np.testing.assert_allclose(got, want, rtol=1e-13)
