"""THEORY §1 init schemes: variances, orthogonality, shared raw draws across schemes."""
from __future__ import annotations

import math

import pytest
import torch

from gradcheck.models import conv_stack, mlp
from gradcheck.schemes import apply_scheme, fan_in, fan_out, init_std, kaiming_gain
from gradcheck.schemes.init import parametric_layers


def test_kaiming_gain_values():
    assert kaiming_gain("relu", 0.0) == pytest.approx(math.sqrt(2), rel=1e-15)
    assert kaiming_gain("lrelu", 0.1) == pytest.approx(1.4072, abs=5e-5)
    assert kaiming_gain("linear", 0.3) == 1.0


@pytest.mark.parametrize("scheme", ["lecun", "xavier", "kaiming"])
def test_empirical_variance_matches_scheme(scheme):
    """Sample variance of a 512x512 draw vs the scheme's; 262144 entries: rel. sd of the
    variance estimate sqrt(2/n) = 0.28%, so 5 sd = 1.4%."""
    m = mlp(2, 512, 512).double()
    apply_scheme(m, scheme, torch.zeros(1, 512, dtype=torch.float64), seed=3,
                 activation="relu")
    w = m[0].weight.detach()
    expect = init_std(scheme, w, "relu") ** 2
    assert float(w.var()) == pytest.approx(expect, rel=5 * math.sqrt(2 / w.numel()))


def test_fans_of_a_conv_kernel():
    w = torch.empty(8, 3, 4, 5)
    assert fan_in(w) == 60 and fan_out(w) == 160


@pytest.mark.parametrize("shape", [(16, 16), (8, 20), (20, 8)])
def test_orthogonal_is_semi_orthogonal(shape):
    m = torch.nn.Sequential(torch.nn.Linear(shape[1], shape[0], bias=False)).double()
    apply_scheme(m, "orthogonal", torch.zeros(1, shape[1], dtype=torch.float64), seed=1)
    w = m[0].weight.detach()
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    tol = 10 * max(shape) * torch.finfo(torch.float64).eps
    torch.testing.assert_close(gram, torch.eye(min(shape), dtype=torch.float64), rtol=0,
                               atol=tol)


def test_orthogonal_conv_kernel_reshaped():
    m = conv_stack(3, 4, 6).double()
    apply_scheme(m, "orthogonal", torch.zeros(1, 3, 6, 6, dtype=torch.float64), seed=0)
    w = parametric_layers(m)[0].weight.detach().reshape(4, -1)   # 4 x 27: orthonormal rows
    torch.testing.assert_close(w @ w.T, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-14)


def test_same_seed_same_raw_directions_across_schemes():
    """C6a premise: lecun and the SN family share the raw weight for one seed."""
    x = torch.zeros(1, 10, dtype=torch.float64)
    a = apply_scheme(mlp(3, 10, 10).double(), "lecun", x, seed=7)
    for scheme in ("sn", "bsn", "ssn", "bssn", "sn-conv"):
        b = apply_scheme(mlp(3, 10, 10).double(), scheme, x, seed=7, scale=1.3)
        for la, lb in zip(parametric_layers(a), parametric_layers(b)):
            assert torch.equal(la.weight, lb.parametrizations.weight.original), scheme


def test_different_seeds_differ_and_same_seed_repeats():
    x = torch.zeros(1, 6, dtype=torch.float64)
    w = [apply_scheme(mlp(2, 6, 6).double(), "xavier", x, seed=s)[0].weight for s in (0, 0, 1)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_unknown_scheme():
    with pytest.raises(ValueError, match="init must be one of"):
        init_std("he", torch.empty(3, 3))
