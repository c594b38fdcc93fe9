"""THEORY §1 SN family as parametrizations: exact and authors' (power) modes."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradcheck.models import conv_stack, mlp
from gradcheck.schemes import apply_scheme, one_step_sigma, scaling_of
from gradcheck.schemes.init import parametric_layers
from gradcheck.schemes.sigma import module_operator_norm, sigma_R, sigma_R2

EPS = torch.finfo(torch.float64).eps


def _conv(seed=0):
    m = conv_stack(4, 6, 8, stride_every=2).double()
    return m, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed),
                          dtype=torch.float64)


@pytest.mark.parametrize("scheme, scale", [("sn", 1.0), ("bsn", 1.0), ("ssn", 1.7),
                                           ("bssn", 0.8), ("sn-conv", 1.0)])
def test_exact_mode_normalises(scheme, scale):
    """The effective weight has the scheme's sigma equal to c (tolerance 100 n eps)."""
    m, x = _conv()
    apply_scheme(m, scheme, x, seed=1, scale=scale)
    c = scale if scheme in ("ssn", "bssn") else 1.0
    shapes = {}
    h = x
    for layer in m:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            shapes[layer] = tuple(h.shape[1:])
        h = layer(h)
    for layer in parametric_layers(m):
        w = layer.weight.detach()
        if scheme in ("sn", "ssn"):
            got = float(sigma_R(w))
        elif scheme in ("bsn", "bssn"):
            got = float(sigma_R(w) + sigma_R2(w)) / 2
        else:
            got = module_operator_norm(layer, shapes[layer], weight=w).sigma
        assert got == pytest.approx(c, rel=100 * w.numel() * EPS), (scheme, layer)


def test_dense_bsn_equals_sn():
    """THEORY C9a: sigma_R == sigma_R2 for dense layers, so BSN == SN to rounding."""
    x = torch.randn(4, 12, dtype=torch.float64)
    a = apply_scheme(mlp(3, 12, 12).double(), "sn", x, seed=5)
    b = apply_scheme(mlp(3, 12, 12).double(), "bsn", x, seed=5)
    for la, lb in zip(parametric_layers(a), parametric_layers(b)):
        torch.testing.assert_close(la.weight, lb.weight, rtol=0, atol=10 * 12 * EPS)


def test_power_mode_updates_only_in_training_and_converges():
    x = torch.randn(4, 20, dtype=torch.float64)
    m = apply_scheme(mlp(2, 20, 20).double(), "sn", x, seed=2, mode="power")
    layer = parametric_layers(m)[0]
    sc = scaling_of(layer)
    exact = float(sigma_R(layer.parametrizations.weight.original.detach()))
    u0 = sc._u0.clone()
    m.eval()
    for _ in range(3):
        m(x)
    assert torch.equal(sc._u0, u0)                       # eval: no update, deterministic
    first = float(sc.sigma(layer.parametrizations.weight.original.detach()))
    assert first <= exact * (1 + 1e-12)                  # a Rayleigh quotient undershoots
    m.train()
    for _ in range(300):
        m(x)
    assert not torch.equal(sc._u0, u0)
    est = float(sc.sigma(layer.parametrizations.weight.original.detach()))
    assert est == pytest.approx(exact, rel=1e-6)


def test_power_mode_state_dict_round_trip():
    x = torch.randn(3, 10, dtype=torch.float64)
    a = apply_scheme(mlp(3, 10, 10).double(), "bsn", x, seed=4, mode="power")
    a.train()
    for _ in range(5):
        a(x)
    b = apply_scheme(mlp(3, 10, 10).double(), "bsn", x, seed=99, mode="power")
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_sn_conv_power_mode_tracks_operator_norm():
    m, x = _conv()
    apply_scheme(m, "sn-conv", x, seed=0, mode="power", n_power_iterations=5)
    m.train()
    for _ in range(60):
        m(x)
    conv = parametric_layers(m)[1]
    raw = conv.parametrizations.weight.original.detach()
    exact = module_operator_norm(conv, (6, 8, 8), weight=raw).sigma
    assert float(scaling_of(conv).sigma(raw)) == pytest.approx(exact, rel=1e-4)


def test_one_step_sigma_undershoots():
    w = torch.randn(30, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    est, exact = one_step_sigma(w, seed=1), float(sigma_R(w))
    assert est <= exact * (1 + 1e-12) and est > 0.3 * exact


def test_exact_sn_gradient_flows_to_raw_weight():
    x = torch.randn(5, 8, dtype=torch.float64)
    m = apply_scheme(mlp(2, 8, 8).double(), "sn", x, seed=0)
    m(x).sum().backward()
    g = parametric_layers(m)[0].parametrizations.weight.original.grad
    assert g is not None and torch.isfinite(g).all() and float(g.norm()) > 0
    assert math.isfinite(float(g.norm()))
