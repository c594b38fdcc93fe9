"""gradcheck.linalg against torch.func (the oracle here: tests may pay its import cost) and
dense SVD: the plain-autograd vjp / Hessian / per-sample vjp and the Lanczos top triple."""
from __future__ import annotations

import pytest
import torch

from gradcheck.linalg import hessian, lanczos_top, per_sample_vjp, vjp


@pytest.mark.parametrize("n", [5, 300])                 # one-row vjps and the batched path
@pytest.mark.parametrize("fn", ["cubic", "relu", "linear", "coupled"])
def test_hessian_matches_torch_func(n, fn, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g, dtype=torch.float64)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    f = {"cubic": lambda v: (v ** 3).sum(), "relu": lambda v: torch.relu(v).sum(),
         "linear": lambda v: (M @ v).sum(), "coupled": lambda v: torch.tanh(M @ v).sum()}[fn]
    want = torch.func.hessian(f)(w)
    assert torch.allclose(hessian(f, w), want, rtol=1e-12, atol=1e-12)


def test_vjp_and_per_sample_vjp_match_torch_func(seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(4, 3, generator=g, dtype=torch.float64)
    h = torch.randn(6, 3, generator=g, dtype=torch.float64)
    d = torch.randn(6, 4, generator=g, dtype=torch.float64)
    _, pull = torch.func.vjp(lambda x: torch.tanh(x @ W.T), h)
    assert torch.allclose(vjp(lambda x: torch.tanh(x @ W.T), h, d), pull(d)[0], rtol=1e-13)
    got = per_sample_vjp(lambda hb, ww: hb @ ww.T, W, h, d)
    assert torch.allclose(got, d[:, :, None] * h[:, None, :], rtol=1e-13)   # delta h^T


@pytest.mark.parametrize("shape", [(400, 400), (500, 300), (300, 500), (600, 2)])
@pytest.mark.parametrize("gram", ["small", "AtA", "AAt"])
def test_lanczos_top_matches_svd(shape, gram, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(*shape, generator=g, dtype=torch.float64)
    r = lanczos_top(A, gram=gram)
    assert r is not None
    sigma, u, v, res = r
    s = torch.linalg.svdvals(A)[0]
    assert abs(float(sigma - s)) <= 1e-12 * float(s) and res <= 1e-12
    assert torch.allclose(A @ v, sigma * u, rtol=0, atol=1e-10 * float(s))
    assert abs(float(u.norm()) - 1) < 1e-12 and abs(float(v.norm()) - 1) < 1e-12


def test_lanczos_top_of_zero_and_rank_one(seed):
    Z = torch.zeros(300, 300, dtype=torch.float64)
    assert float(lanczos_top(Z)[0]) == 0.0
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(300, generator=g, dtype=torch.float64) for _ in range(2))
    sigma = float(lanczos_top(torch.outer(a, b))[0])
    assert abs(sigma - float(a.norm() * b.norm())) <= 1e-12 * sigma
