"""Tests of ``gradcheck/theory/reparam.py`` (THEORY C2, C3, C4 formulas), float64.

- Known answers: the C2a factors, C2b at equal allocation and on small hand examples, C4 at
  identity and sigmoid output.
- C2b (AM-GM) as a property over random positive allocations, and its link to C1
  (``c2b_lhs`` is the sum of squared C1 bounds with ``lambda_L = mu = 1``).
- C3a against autograd through ``W -> W / sigma_R(W)`` for random weights and random smooth
  losses (dense and conv-shaped), plus its scale invariance ``<dD/dW, W> = 0``.
- C3b as a property for arbitrary ``G`` and, for rank-one ``G``, the dense corollary.

Identity tolerances: ``10 n eps`` for sums of ``n`` float64 terms (STYLE.md §7), times the
conditioning ``1 + sigma_1 / (sigma_1 - sigma_2)`` of the top singular vectors where they enter.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import EPS, assert_rel_close
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gradcheck.schemes.sigma import sigma_R
from gradcheck.theory.bounds import SUP_SECOND, c1_bound
from gradcheck.theory.reparam import (
    c2b_lhs,
    c2b_rhs,
    c3b_bound,
    c3b_dense_bound,
    c4_bound,
    nuclear_norm,
    scaled_gradient_factors,
    sn_raw_gradient,
    top_singular_triple,
)


def tol(n: int) -> float:
    """``10 n eps``: round-off of a quantity accumulated from ``n`` O(1) float64 terms."""
    return 10 * n * EPS


def gap_factor(W: torch.Tensor) -> float:
    s = torch.linalg.svdvals(W.reshape(W.shape[0], -1))
    s2 = float(s[1]) if s.numel() > 1 else 0.0
    return 1.0 + float(s[0]) / (float(s[0]) - s2)


# ------------------------------------------------------------------------------------------------
# C2a
# ------------------------------------------------------------------------------------------------

def test_scaled_gradient_factors_known_answer():
    d, g = scaled_gradient_factors([2.0, 0.5, 4.0])
    assert d == 4.0
    assert g.tolist() == [2.0, 8.0, 1.0]


def test_scaled_gradient_factors_unit_product_divides_by_c_t():
    """THEORY C2a: with ``prod c = 1``, D is unchanged and ``dD/dW_t`` is divided by ``c_t``."""
    c = np.array([0.5, 4.0, 0.5])
    d, g = scaled_gradient_factors(c)
    assert d == 1.0
    assert_rel_close(g, 1.0 / c, rtol=tol(3), what="prod_(i!=t) c_i vs 1/c_t")


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, -2.0], [math.nan]])
def test_scaled_gradient_factors_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive scales"):
        scaled_gradient_factors(bad)


# ------------------------------------------------------------------------------------------------
# C2b
# ------------------------------------------------------------------------------------------------

def test_c2b_known_answers():
    # s = (2, 1/2): C = 1, sum_t prod_(i!=t) s_i^2 = 1/4 + 4; L C^(2-2/L) = 2.
    assert float(c2b_lhs(1.0, [2.0, 0.5])) == 4.25
    assert float(c2b_rhs(1.0, [2.0, 0.5])) == 2.0
    # One layer: both sides ||x||^2 (C^0 = 1, empty product = 1).
    assert float(c2b_lhs(3.0, [7.0])) == 9.0 == float(c2b_rhs(3.0, [7.0]))
    # SN: all s_t = 1 -> both sides L ||x||^2.
    assert float(c2b_lhs(2.0, np.ones(5))) == 20.0 == float(c2b_rhs(2.0, np.ones(5)))


def test_c2b_lhs_is_sum_of_squared_c1_bounds():
    """``c2b_lhs`` is ``sum_t (C1 bound_t)^2`` with ``lambda_L = mu_t = 1``."""
    rng = np.random.default_rng(0)
    s, x = rng.uniform(0.2, 3.0, size=5), rng.uniform(0.5, 2.0, size=4)
    b = c1_bound(x, s, np.ones(5), 1.0)
    assert_rel_close(c2b_lhs(x, s), (b ** 2).sum(axis=0), rtol=tol(5), what="C2b lhs vs C1")


def test_c2b_exact_with_a_zero_norm():
    """``s_t = 0`` makes every other term vanish but keeps ``prod_(i!=t)``: no 0 * inf."""
    assert float(c2b_lhs(1.0, [0.0, 2.0, 3.0])) == 36.0
    assert float(c2b_rhs(1.0, [0.0, 2.0, 3.0])) == 0.0


@settings(max_examples=200, deadline=None)
@given(s=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=8),
       x=st.floats(1e-3, 1e3))
def test_c2b_amgm_lower_bound_leq_summed_bounds(s, x):
    """THEORY C2b: ``L ||x||^2 C^(2-2/L) <= ||x||^2 C^2 sum_t s_t^-2`` for every allocation."""
    lo, hi = float(c2b_rhs(x, s)), float(c2b_lhs(x, s))
    assert lo <= hi * (1 + tol(4 * len(s))), (
        f"C2b violated: s = {s}, ||x|| = {x}: lhs {lo!r} > rhs {hi!r} (ratio {lo / hi!r})")


@settings(max_examples=100, deadline=None)
@given(C=st.floats(1e-2, 1e2), L=st.integers(1, 8), x=st.floats(1e-2, 1e2))
def test_c2b_equality_at_equal_allocation(C, L, x):
    """Equality iff ``s_t = C^(1/L)`` for all t."""
    s = np.full(L, C ** (1.0 / L))
    assert_rel_close(c2b_rhs(x, s), c2b_lhs(x, s), rtol=tol(4 * L),
                     what=f"C2b equality, C={C}, L={L}")


@settings(max_examples=100, deadline=None)
@given(s=st.lists(st.floats(0.1, 10.0), min_size=2, max_size=6), j=st.integers(0, 5),
       f=st.floats(1.05, 3.0))
def test_c2b_strict_away_from_equal_allocation(s, j, f):
    """Moving one factor off equal allocation (same C) makes the inequality strict."""
    L = len(s)
    C = float(np.prod(s))
    eq = np.full(L, C ** (1.0 / L))
    eq[j % L] *= f
    eq[(j + 1) % L] /= f
    assert float(c2b_rhs(1.0, eq)) < float(c2b_lhs(1.0, eq)) * (1 - tol(4 * L))


# ------------------------------------------------------------------------------------------------
# C3a / C3b
# ------------------------------------------------------------------------------------------------

@st.composite
def weight_and_grad(draw):
    """A raw weight (dense ``(m, n)`` or conv ``(c_out, c_in, k, k)``), a random Gaussian ``G``
    and the loss matrix ``A`` of ``D(W_bar) = sum(tanh(A * W_bar))`` (so G = A (1 - tanh^2))."""
    seed = draw(st.integers(0, 2 ** 31 - 1))
    gen = torch.Generator().manual_seed(seed)
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    else:
        k = draw(st.integers(1, 3))
        shape = (draw(st.integers(1, 5)), draw(st.integers(1, 4)), k, k)
    scale = draw(st.floats(0.1, 10.0))
    W = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    A = torch.randn(shape, generator=gen, dtype=torch.float64)
    return W, A


def _autograd_raw(W: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G = dD/dW_bar, dD/dW) by autograd for ``D = sum(tanh(A * W / sigma_R(W)))``."""
    w = W.clone().requires_grad_(True)
    wb = (w / sigma_R(w)).detach().requires_grad_(True)
    G = torch.autograd.grad(torch.tanh(A * wb).sum(), wb)[0]
    raw = torch.autograd.grad(torch.tanh(A * (w / sigma_R(w))).sum(), w)[0]
    return G, raw


@settings(max_examples=80, deadline=None)
@given(weight_and_grad())
def test_sn_raw_gradient_matches_autograd(case):
    """THEORY C3a: Miyato's Eq. 12 equals autograd through ``W -> W / sigma_R(W)``."""
    W, A = case
    g = gap_factor(W)
    assume(g < 1e6)    # the premise: a simple top singular value
    G, raw = _autograd_raw(W, A)
    sigma = float(top_singular_triple(W)[0])
    n = W.numel()
    t = tol(n) * g
    assert_rel_close(sn_raw_gradient(G, W), raw, rtol=t, atol=t * float(G.norm()) / sigma,
                     what=f"C3a, shape {tuple(W.shape)}, gap factor {g:.3g}")


@settings(max_examples=50, deadline=None)
@given(weight_and_grad())
def test_sn_raw_gradient_is_orthogonal_to_W(case):
    """``D(W / sigma(W))`` is scale invariant in ``W``, so ``<dD/dW, W> = 0``."""
    W, A = case
    G = torch.randn(W.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inner = float((sn_raw_gradient(G, W) * W).sum())
    scale = float(G.norm()) * float(W.norm()) / float(top_singular_triple(W)[0])
    assert abs(inner) <= tol(W.numel()) * gap_factor(W) * scale


def test_sn_raw_gradient_batched_equals_loop():
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(4, 3, 2, 2, generator=gen, dtype=torch.float64)
    G = torch.randn(5, 4, 3, 2, 2, generator=gen, dtype=torch.float64)
    want = torch.stack([sn_raw_gradient(G[b], W) for b in range(5)])
    torch.testing.assert_close(sn_raw_gradient(G, W), want, rtol=tol(48), atol=tol(48))


def test_sn_raw_gradient_of_a_scalar_weight_is_zero():
    """``1 x 1``: ``W_bar = sign(W)`` is constant, so the raw gradient is exactly 0."""
    assert float(sn_raw_gradient(torch.tensor([[3.7]], dtype=torch.float64),
                                 torch.tensor([[-2.0]], dtype=torch.float64)).abs()) == 0.0


def test_sn_raw_gradient_known_answer_diagonal():
    """``W = diag(2, 1)``: sigma = 2, u = v = e1, W_bar = diag(1, 1/2); for ``G = I``
    ``<G, W_bar> = 3/2`` and ``dD/dW = (I - 3/2 e1 e1^T) / 2 = diag(-1/4, 1/2)``."""
    W = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
    got = sn_raw_gradient(torch.eye(2, dtype=torch.float64), W)
    torch.testing.assert_close(got, torch.diag(torch.tensor([-0.25, 0.5], dtype=torch.float64)),
                               rtol=tol(4), atol=tol(4))


@settings(max_examples=80, deadline=None)
@given(weight_and_grad())
def test_c3b_raw_gradient_norm_leq_bound(case):
    """THEORY C3b: ``||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)`` for any ``G``."""
    W, G = case
    lhs = float(sn_raw_gradient(G, W).norm())
    rhs = c3b_bound(G, W)
    assert lhs <= rhs * (1 + tol(W.numel()) * gap_factor(W)), (
        f"C3b violated, shape {tuple(W.shape)}: {lhs!r} > {rhs!r} (ratio {lhs / rhs!r})")


@settings(max_examples=80, deadline=None)
@given(weight_and_grad(), st.integers(0, 2 ** 31 - 1))
def test_c3b_rank_one_dense_corollary(case, seed):
    """For rank-one ``G = delta h^T`` (one input, dense layer): ``||G||_* = ||G||_F`` and
    ``||dD/dW||_F <= 2 ||G||_F / sigma(W)``."""
    W, _ = case
    W = W.reshape(W.shape[0], -1)
    gen = torch.Generator().manual_seed(seed)
    G = torch.outer(torch.randn(W.shape[0], generator=gen, dtype=torch.float64),
                    torch.randn(W.shape[1], generator=gen, dtype=torch.float64))
    sigma = float(top_singular_triple(W)[0])
    assert_rel_close(float(nuclear_norm(G)), float(G.norm()), rtol=tol(W.numel()),
                     what="rank-one nuclear norm")
    lhs = float(sn_raw_gradient(G, W).norm())
    rhs = float(c3b_dense_bound(float(G.norm()), sigma, 1.0))
    assert lhs <= rhs * (1 + tol(W.numel()) * gap_factor(W))


def test_c3b_dense_bound_known_answer():
    assert float(c3b_dense_bound(3.0, 2.0, 0.25)) == 0.75
    assert float(c3b_dense_bound(3.0, 2.0, 1.0, others=4.0)) == 12.0


# ------------------------------------------------------------------------------------------------
# C4
# ------------------------------------------------------------------------------------------------

def test_c4_bound_identity_output_is_zero():
    assert np.all(c4_bound("identity", 2.0, np.array([1.0, 5.0]), [3.0, 4.0, 5.0], 1) == 0.0)


def test_c4_bound_sigmoid_known_answer():
    # mu = 2, ||x|| = 3, prod_(i!=1) = 3 * 5 = 15 -> (2 * 3 * 15)^2 = 8100.
    got = float(c4_bound("sigmoid", 2.0, 3.0, [3.0, 4.0, 5.0], 1))
    assert_rel_close(got, 8100.0 / (6.0 * math.sqrt(3.0)), rtol=tol(4), what="C4 bound")
    assert SUP_SECOND["sigmoid"] == pytest.approx(0.0962250448649376, rel=tol(1))


def test_c4_bound_rejects_unknown_output():
    with pytest.raises(ValueError, match="output must be one of"):
        c4_bound("tanh", 1.0, 1.0, [1.0], 0)
